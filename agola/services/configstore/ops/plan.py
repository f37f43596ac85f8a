"""What an operation decides to write: the plan the actions layer hands to the datamanager."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

import attrs

from agola.services.configstore import keys, names, tokens
from agola.services.configstore.state import ConfigState, StoredObject, datatype_of

R = TypeVar("R")


@attrs.frozen
class Write:
    """Put ``obj`` (or delete, when ``obj`` is None) as ``datatype``/``id``."""

    datatype: str
    id: str
    obj: StoredObject | None = None

    @property
    def is_delete(self) -> bool:
        return self.obj is None

    @classmethod
    def put(cls, obj: StoredObject) -> Write:
        return cls(datatype_of(obj), obj.id, obj)

    @classmethod
    def delete(cls, datatype: str, id: str) -> Write:
        return cls(datatype, id, None)


@attrs.frozen
class Plan(Generic[R]):
    """The writes of one operation (one atomic WAL), the change groups it depends on, its result."""

    writes: tuple[Write, ...]
    change_groups: tuple[str, ...]
    result: R

    def apply_to(self, state: ConfigState) -> None:
        """Apply the writes to an in-memory state (what the readdb will do once they are committed)."""
        for write in self.writes:
            if write.obj is None:
                state.delete(write.datatype, write.id)
            else:
                state.put(write.obj)


def plan(writes: Iterable[Write], change_groups: Iterable[str], result: R) -> Plan[R]:
    # Keep order, drop duplicates: a group named twice is one compare in the write.
    return Plan(tuple(writes), tuple(dict.fromkeys(change_groups)), result)


def _utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


@attrs.frozen
class Env:
    """Where operations get fresh ids, time and random secrets (injectable for tests)."""

    new_id: Callable[[], str] = names.new_id
    now: Callable[[], _dt.datetime] = _utcnow
    new_secret: Callable[[], str] = keys.random_secret
    new_token: Callable[[], str] = tokens.generate_token
