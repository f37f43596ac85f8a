"""The Coordination interface: the subset of etcd v3 the control plane relies on.

Keys are ``str`` and relative to the prefix the instance was opened with (``runservice/``);
values are ``bytes``. Revisions are the store's global, monotonically increasing revision numbers
with etcd's semantics: every write transaction bumps the revision by one; ``create_revision`` and
``mod_revision`` of a key are the revisions of its creation and last change; a missing key has
``create_revision == mod_revision == version == 0`` in comparisons.

Errors: ``agola.errors.Unavailable`` when the server cannot be reached (``Closed``, a subclass, once
the handle or its store was closed: expected while a process shuts down); ``Compacted`` when a watch
asks for history that is gone.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from typing import Literal

import attrs

from agola.errors import AgolaError, Unavailable


class Closed(Unavailable):
    """The coordination handle (or the store below it) was closed: what a call made after
    ``close()`` gets, which a loop stopping at shutdown may meet and need not report."""


class Compacted(AgolaError):
    """The requested revision was compacted; the caller must resync from a fresh range."""

    status = 410
    code = "compacted"

    def __init__(self, message: str = "", *, compact_revision: int = 0) -> None:
        super().__init__(message or f"revision compacted (compact revision {compact_revision})")
        self.compact_revision = compact_revision


@attrs.frozen
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0


@attrs.frozen
class RangeResult:
    kvs: list[KeyValue]
    # The store revision at which the range was read.
    revision: int


CompareTarget = Literal["value", "mod", "create", "version"]
CompareOp = Literal["==", "!=", "<", ">"]


@attrs.frozen
class Compare:
    """One txn condition, e.g. ``Compare.mod("k", "==", 42)`` or ``Compare.create("k", "==", 0)``."""

    key: str
    target: CompareTarget
    op: CompareOp
    operand: bytes | int

    @classmethod
    def value(cls, key: str, op: CompareOp, value: bytes) -> Compare:
        return cls(key, "value", op, value)

    @classmethod
    def mod(cls, key: str, op: CompareOp, revision: int) -> Compare:
        return cls(key, "mod", op, revision)

    @classmethod
    def create(cls, key: str, op: CompareOp, revision: int) -> Compare:
        return cls(key, "create", op, revision)

    @classmethod
    def version(cls, key: str, op: CompareOp, version: int) -> Compare:
        return cls(key, "version", op, version)


@attrs.frozen
class Put:
    key: str
    value: bytes
    lease: int = 0


@attrs.frozen
class Delete:
    key: str
    prefix: bool = False


@attrs.frozen
class Get:
    key: str
    prefix: bool = False


Op = Put | Delete | Get


@attrs.frozen
class TxnResult:
    succeeded: bool
    # The store revision after the txn (unchanged if it wrote nothing).
    revision: int
    # One entry per op of the branch that ran: a RangeResult for Get, None for Put/Delete.
    responses: list[RangeResult | None]


@attrs.frozen
class Event:
    type: Literal["put", "delete"]
    # For a delete: key, empty value, mod_revision = the delete's revision, other fields 0.
    kv: KeyValue
    prev_kv: KeyValue | None = None

    @property
    def revision(self) -> int:
        return self.kv.mod_revision


class Watcher(abc.ABC):
    """An async iterator of events in revision order, with no loss, duplicate or reordering,
    even across a server restart (the implementation resumes from the last revision it saw).
    Raises ``Compacted`` if history it needs is gone."""

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[Event]: ...

    @abc.abstractmethod
    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Watcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class Lease(abc.ABC):
    """A granted lease, kept alive automatically until revoked or lost."""

    id: int
    ttl: float

    @abc.abstractmethod
    async def revoke(self) -> None: ...

    @property
    @abc.abstractmethod
    def lost(self) -> bool:
        """True once a keepalive failed or the server said the lease expired."""

    @abc.abstractmethod
    async def wait_lost(self) -> None:
        """Return when the lease is lost (never returns for a healthy lease)."""


class Mutex(abc.ABC):
    """A mutex shared by every process of the coordination, served in arrival order (etcd:
    clientv3's queued mutex on lease keys; embedded: an in-process table, no store write)."""

    @abc.abstractmethod
    async def try_lock(self) -> bool:
        """Take the lock if free, else return False at once."""

    @abc.abstractmethod
    async def lock(self, timeout: float | None = None) -> None:
        """Wait in line for the lock; ``TimeoutError`` after ``timeout`` seconds."""

    @abc.abstractmethod
    async def unlock(self) -> None: ...

    @property
    @abc.abstractmethod
    def held(self) -> bool:
        """True between a successful ``try_lock``/``lock`` and ``unlock``."""

    @property
    @abc.abstractmethod
    def waiting(self) -> bool:
        """True while a ``lock()`` call of this object waits in line."""

    @property
    def lost(self) -> bool:
        """True once the session of the held lock was lost (another locker may own it now):
        work done under the lock must stop. False when the lock is not held."""
        return False

    @abc.abstractmethod
    async def wait_lost(self) -> None:
        """Return once ``lost`` turns true (never, while the lock stays healthy)."""

    async def __aenter__(self) -> Mutex:
        await self.lock()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.unlock()


class Coordination(abc.ABC):
    @abc.abstractmethod
    async def get(self, key: str) -> KeyValue | None: ...

    @abc.abstractmethod
    async def range(self, prefix: str, *, revision: int = 0, limit: int = 0) -> RangeResult:
        """Keys starting with ``prefix`` in key order (at ``revision`` if > 0)."""

    @abc.abstractmethod
    async def put(self, key: str, value: bytes, *, lease: int = 0) -> int:
        """Store ``value``; returns the new revision."""

    @abc.abstractmethod
    async def delete(self, key: str, *, prefix: bool = False) -> int:
        """Delete the key (or every key under a prefix); returns how many were deleted."""

    @abc.abstractmethod
    async def txn(
        self, compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] | None = None
    ) -> TxnResult: ...

    @abc.abstractmethod
    def watch(self, prefix: str, *, start_revision: int = 0) -> Watcher:
        """Events for keys under ``prefix`` from ``start_revision`` (0 = from now on: pinned
        when the watcher is created or, at the latest, entered with ``async with``)."""

    @abc.abstractmethod
    async def grant_lease(self, ttl: float) -> Lease: ...

    @abc.abstractmethod
    def mutex(self, key: str, *, ttl: float = 5.0) -> Mutex:
        """A mutex on ``key`` held under its own lease (session) of ``ttl`` seconds."""

    @abc.abstractmethod
    async def revision(self) -> int:
        """The current store revision."""

    @abc.abstractmethod
    async def close(self) -> None: ...
