"""Maintenance mode, export and import of the configstore and the runservice, for the admin
(spec §3.12, the gateway's ``/maintenance``, ``/export`` and ``/import`` of Agola v0.6+).

The gateway relays to the internal API of the named service (with its internal API token);
streams pass through in bounded chunks, never held whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterable

from agola.errors import BadRequest, Unavailable
from agola.roleclients.base import ResponseStream
from agola.roleclients.maintenance import MaintenanceCalls
from agola.services.gateway.actions import Services
from agola.services.gateway.auth import Identity
from agola.services.gateway.permissions import require_admin
from agola.types.maintenance import MaintenanceStatus
from agola.util.log import get_logger

log = get_logger(__name__)

SERVICES = ("configstore", "runservice")


def service_client(svc: Services, service: str) -> MaintenanceCalls:
    """The internal client of ``service``; ``BadRequest`` for another name."""
    if service == "runservice":
        return svc.runservice
    if service == "configstore":
        if not isinstance(svc.configstore, MaintenanceCalls):
            raise Unavailable("this gateway reaches the configstore in process, not over HTTP: no maintenance")
        return svc.configstore
    raise BadRequest(f"invalid service name {service!r}: one of {', '.join(SERVICES)}")


def _admin_client(svc: Services, ident: Identity, service: str) -> MaintenanceCalls:
    require_admin(ident)
    return service_client(svc, service)


async def set_maintenance(svc: Services, ident: Identity, service: str, enabled: bool) -> None:
    """Request maintenance mode on or off; ``BadRequest`` when already requested so."""
    await _admin_client(svc, ident, service).set_maintenance(enabled)
    log.info("maintenance mode " + ("requested" if enabled else "end requested"), service=service,
             by=ident.user.name if ident.user else "admin")


async def maintenance_status(svc: Services, ident: Identity, service: str) -> MaintenanceStatus:
    return await _admin_client(svc, ident, service).maintenance_status()


async def export(svc: Services, ident: Identity, service: str, *, force: bool = False) -> ResponseStream:
    """The export stream, open (a refusal, e.g. the runservice's ``Conflict`` while runs are not
    archived yet, is raised here, before any byte)."""
    stream = _admin_client(svc, ident, service).export(force=force)
    await stream.open()
    log.info("export started", service=service, force=force)
    return stream


async def import_(svc: Services, ident: Identity, service: str, body: AsyncIterable[bytes]) -> int:
    """Replace every object of ``service`` with an export stream; the number of objects.

    Refused before the upload unless maintenance mode is on for every instance: an instance
    still serving would keep answering from the data being replaced.
    """
    client = _admin_client(svc, ident, service)
    status = await client.maintenance_status()
    if not status.requested_status:
        raise BadRequest(f"{service} is not in maintenance mode: enable it first")
    if not status.current_status:
        pending = [i.id for i in status.instances if not i.current_status]
        raise BadRequest(f"{service}: maintenance mode requested but not every instance switched yet "
                         f"({', '.join(pending)}): try again shortly")
    count = await client.import_(body)
    log.info("import done", service=service, entries=count)
    return count
