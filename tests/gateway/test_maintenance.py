"""The admin's maintenance mode, export and import through the gateway (spec §3.12, §9.2 items
35-36): permissions, errors a user can act on, the runservice's refusal while runs are active, and
a configstore round trip in maintenance mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from agola.client import GatewayClient, errors
from tests.gateway.conftest import Env
from tests.gateway.test_direct_runs import PIPELINE, _direct_run
from tests.support.waiting import wait_for


async def _current(env: Env, service: str, state: bool) -> None:
    async def switched() -> bool:
        return (await env.admin.maintenance_status(service)).current_status is state

    await wait_for(switched, 15, message=f"{service} current_status {state}")


async def _export(client: GatewayClient, service: str, *, force: bool = False) -> bytes:
    return b"".join([c async for c in client.export(service, force=force)])


async def test_maintenance_export_import_as_admin_only(env: Env, tmp_path: Path) -> None:
    admin = env.admin
    _, bob = await env.user("bob")
    anonymous = env.client()

    # Only the admin; an unknown service is named.
    with pytest.raises(errors.Forbidden):
        await bob.set_maintenance("configstore", True)
    with pytest.raises(errors.Forbidden):
        await bob.maintenance_status("runservice")
    with pytest.raises(errors.Forbidden):
        await _export(bob, "configstore")
    with pytest.raises(errors.Forbidden):
        await bob.import_("configstore", b"")
    with pytest.raises(errors.Unauthorized):
        await anonymous.set_maintenance("configstore", False)
    with pytest.raises(errors.BadRequest, match="invalid service name 'gitserver'"):
        await admin.set_maintenance("gitserver", True)

    status = await admin.maintenance_status("runservice")
    assert (status.requested_status, status.current_status) == (False, False)
    assert len(status.instances) == 1 and status.instances[0].pid > 0
    assert not status.instances[0].current_status

    # A queued run lives in coordination, not in an export: refused, the run named, unless forced.
    alice = await env.user("alice")
    _, _, (run_id,) = await _direct_run(env, tmp_path, alice, {".agola/config.yml": PIPELINE})
    with pytest.raises(errors.Conflict, match=rf"run 1 of /user/{alice[0].id}/branch/master \({run_id}, queued\)"):
        await _export(admin, "runservice")
    assert b'"data_type":"run",' not in await _export(admin, "runservice", force=True)  # its config is
    await alice[1].cancel_run(run_id)

    async def archived() -> bool:
        return (await env.rs.get_run(run_id)).run.archived

    await wait_for(archived, 15, message="the cancelled run archived")
    assert (await _export(admin, "runservice")).count(b'"data_type":"run"') == 1

    # Import only in maintenance mode, which is requested once.
    exported = await _export(admin, "configstore")
    assert exported.count(b'"data_type":"user"') == 2
    with pytest.raises(errors.BadRequest, match="not in maintenance mode"):
        await admin.import_("configstore", exported)
    await env.user("carol")  # after the export: gone once it is imported
    await admin.set_maintenance("configstore", True)
    with pytest.raises(errors.BadRequest, match="already enabled"):
        await admin.set_maintenance("configstore", True)
    await _current(env, "configstore", True)
    status = await admin.maintenance_status("configstore")
    assert status.requested_status and [i.current_status for i in status.instances] == [True]

    # A body over the API's 1 MiB limit streams through to the configstore, which refuses it
    # whole (nothing half imported).
    big = exported + b"x" * (2 * 1024 * 1024) + b"\n"
    with pytest.raises(errors.BadRequest, match=r"import: line \d+: invalid JSON"):
        await admin.import_("configstore", big)
    assert await admin.import_("configstore", exported) == exported.count(b'"data_type":')
    await admin.set_maintenance("configstore", False)
    with pytest.raises(errors.BadRequest, match="already disabled"):
        await admin.set_maintenance("configstore", False)
    await _current(env, "configstore", False)
    assert sorted(u.username for u in await admin.list_users()) == ["alice", "bob"]
