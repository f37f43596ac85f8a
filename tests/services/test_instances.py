"""The instance registry behind the maintenance status: every live instance listed with the mode
it is in, back after its lease is lost, gone when it stops; and how the current mode is derived."""

from __future__ import annotations

from pathlib import Path

from agola.services.instances import InstanceRegistration, list_instances
from agola.storage.coord.factory import open_coordination
from agola.types.maintenance import InstanceState, MaintenanceStatus
from tests.support.waiting import wait_for


async def test_registration_follows_the_mode_survives_a_lost_lease_and_goes_on_stop(tmp_path: Path) -> None:
    coord = await open_coordination(None, tmp_path, "runservice/")
    try:
        a = InstanceRegistration(coord, ttl=5, retry=0.05)
        b = InstanceRegistration(coord, ttl=5, retry=0.05)
        a.start(False)
        b.start(True)

        async def modes() -> dict[str, bool]:
            return {i.id: i.current_status for i in await list_instances(coord)}

        async def listed(expected: dict[str, bool]) -> bool:
            return await modes() == expected

        await wait_for(lambda: listed({a.state.id: False, b.state.id: True}), 5)
        await a.set_mode(True)
        assert await modes() == {a.state.id: True, b.state.id: True}

        # The lease goes (an outage longer than its TTL): the key is written again with a new one.
        assert a._lease is not None
        await a._lease.revoke()
        await wait_for(lambda: listed({a.state.id: True, b.state.id: True}), 5)

        await a.stop()
        assert await modes() == {b.state.id: True}
        await b.stop()
        assert await modes() == {}
    finally:
        await coord.close()


def test_current_status_is_the_requested_one_once_every_instance_switched() -> None:
    def status(requested: bool, *modes: bool) -> bool:
        return MaintenanceStatus.of(requested, [InstanceState(str(n), current_status=m)
                                                for n, m in enumerate(modes)]).current_status

    assert status(True, True, True) is True
    assert status(True, True, False) is False  # still switching: not in maintenance yet
    assert status(False, True, False) is True  # still switching back: not out of it yet
    assert status(False, False, False) is False
    doc = MaintenanceStatus.of(True, [InstanceState("i1", "h", 7, True)]).to_json()
    assert doc == {"requested_status": True, "current_status": True,
                   "instances": [{"id": "i1", "host": "h", "pid": 7, "current_status": True}]}
