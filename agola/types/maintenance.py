"""The maintenance status of a stateful role (configstore, runservice) on the wire (spec §3.12)."""

from __future__ import annotations

import attrs

from agola.types._json import JSONType, jfield


@attrs.frozen
class InstanceState(JSONType):
    """One live instance; ``current_status`` is true while it serves in maintenance mode."""

    id: str = jfield("id")
    host: str = jfield("host", default="")
    pid: int = jfield("pid", default=0)
    current_status: bool = jfield("current_status", omitempty=False, default=False)


@attrs.frozen
class MaintenanceStatus(JSONType):
    """``requested_status``: maintenance mode is requested (the ``maintenance`` key exists);
    ``current_status``: the mode the instances are in, the requested one once every live
    instance has switched (until then the other one); ``instances``: each of them."""

    requested_status: bool = jfield("requested_status", omitempty=False)
    current_status: bool = jfield("current_status", omitempty=False)
    instances: list[InstanceState] = jfield("instances", omitempty=False, factory=list)

    @classmethod
    def of(cls, requested: bool, instances: list[InstanceState]) -> MaintenanceStatus:
        states = [i.current_status for i in instances]
        current = all(states) if requested else any(states)
        return cls(requested, current, instances)
