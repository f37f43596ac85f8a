"""Maintenance mode, export and import of the configstore (spec §3.12): the handlers shared with
the runservice (``agola.services.maintenanceapi``). Every configstore object is in the
datamanager, so an export is complete whenever it is taken.
"""

from __future__ import annotations

from aiohttp import web

from agola.services import maintenanceapi
from agola.services.configstore.api.common import role_of

MAINTENANCE_PATHS = maintenanceapi.MAINTENANCE_PATHS


def add_routes(app: web.Application) -> None:
    maintenanceapi.add_routes(app, "configstore", role_of)
