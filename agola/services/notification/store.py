"""Deliveries kept in the notification role's coordination store (etcd, or the embedded store in
``notification.dataDir``), durable across restarts and shared by every notification instance.

Keys, under the role's prefix ``notification/``::

    deliveries/<id>                          the Delivery JSON
    pending/<id>                             present while the delivery is notDelivered
    owners/<project|user>/<ownerID>/<kind>/<id>   the listing index of an owner
    deliverysequence                         the sequence minting ids (sortable: id order = age)
    runstates/<runID>                        the run's phase/result last notified (catch-up, dedup)

Only the leader's sender writes delivery outcomes; event handlers only add deliveries.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import attrs

from agola.errors import BadRequest, NotExist
from agola.storage.coord.base import Coordination, Delete, Put
from agola.storage.coord.sequence import next_sequence
from agola.types.notification import CommitStatusMessage, Delivery, DeliveryKind, DeliveryStatus, OwnerType

DELIVERIES = "deliveries/"
PENDING = "pending/"
OWNERS = "owners/"
SEQUENCE_KEY = "deliverysequence"
RUNSTATES = "runstates/"
FINAL_PHASES = ("finished", "setuperror", "cancelled")
MAX_LIST_LIMIT = 100


def utcnow() -> datetime:
    return datetime.now(UTC)


def _owner_prefix(owner_type: OwnerType, owner_id: str, kind: DeliveryKind) -> str:
    return f"{OWNERS}{owner_type}/{owner_id}/{kind}/"


def _owner_key(d: Delivery) -> str:
    return _owner_prefix(d.owner_type, d.owner_id, d.kind) + d.id


@attrs.frozen
class Page:
    deliveries: list[Delivery]
    has_more: bool


class DeliveryStore:
    def __init__(self, coord: Coordination, *, now: Callable[[], datetime] = utcnow) -> None:
        self.coord = coord
        self.now = now

    async def add(self, kind: DeliveryKind, owner_type: OwnerType, owner_id: str, *, run_id: str = "",
                  payload: str = "", commit_status: CommitStatusMessage | None = None,
                  redelivery_of: str = "") -> Delivery:
        seq = await next_sequence(self.coord, SEQUENCE_KEY)
        now = self.now()
        d = Delivery(id=str(seq), sequence=seq.c, kind=kind, owner_type=owner_type, owner_id=owner_id,
                     run_id=run_id, payload=payload, commit_status=commit_status, created_at=now,
                     next_attempt_at=now, redelivery_of=redelivery_of)
        await self.coord.txn([], [Put(DELIVERIES + d.id, d.to_json_bytes()), Put(PENDING + d.id, b""),
                                  Put(_owner_key(d), b"")])
        return d

    async def get(self, delivery_id: str) -> Delivery:
        kv = await self.coord.get(DELIVERIES + delivery_id) if delivery_id else None
        if kv is None:
            raise NotExist(f"delivery {delivery_id!r} does not exist")
        return Delivery.from_json(kv.value)

    async def _get_many(self, ids: Iterable[str]) -> list[Delivery]:
        out = []
        for delivery_id in ids:
            kv = await self.coord.get(DELIVERIES + delivery_id)
            if kv is not None:  # expired meanwhile
                out.append(Delivery.from_json(kv.value))
        return out

    async def pending(self) -> list[Delivery]:
        """Every notDelivered delivery, oldest first."""
        rr = await self.coord.range(PENDING)
        return await self._get_many(kv.key[len(PENDING):] for kv in rr.kvs)

    async def save_attempt(self, d: Delivery) -> None:
        """Store the outcome of an attempt; a delivery no longer notDelivered leaves the pending set."""
        ops: list[Put | Delete] = [Put(DELIVERIES + d.id, d.to_json_bytes())]
        if d.delivery_status is not DeliveryStatus.NOT_DELIVERED:
            ops.append(Delete(PENDING + d.id))
        await self.coord.txn([], ops)

    async def list(self, owner_type: OwnerType, owner_id: str, kind: DeliveryKind, *,
                   statuses: Iterable[str] = (), start: str = "", limit: int = 0, asc: bool = True) -> Page:
        """An owner's deliveries of one kind, by id (``asc`` or newest first), after ``start``
        (exclusive), filtered by delivery status; ``limit`` 0 = ``MAX_LIST_LIMIT``."""
        wanted = {_status(s) for s in statuses}
        limit = MAX_LIST_LIMIT if limit <= 0 else min(limit, MAX_LIST_LIMIT)
        prefix = _owner_prefix(owner_type, owner_id, kind)
        ids = [kv.key[len(prefix):] for kv in (await self.coord.range(prefix)).kvs]
        if not asc:
            ids.reverse()
        if start:
            ids = [i for i in ids if (i > start if asc else i < start)]
        out: list[Delivery] = []
        for d in await self._get_many(ids):
            if wanted and d.delivery_status not in wanted:
                continue
            if len(out) == limit:
                return Page(out, True)
            out.append(d)
        return Page(out, False)

    async def redeliver(self, owner_type: OwnerType, owner_id: str, kind: DeliveryKind, delivery_id: str) -> Delivery:
        """A new delivery of the same message (Agola: refused while one is still in progress)."""
        d = await self.get(delivery_id)
        if (d.owner_type, d.owner_id, d.kind) != (owner_type, owner_id, kind):
            # Same answer as a missing one: the id belongs to something else.
            raise NotExist(f"delivery {delivery_id!r} does not exist")
        root = d.redelivery_of or d.id
        for other in await self.pending():
            if (other.redelivery_of or other.id) == root:
                raise BadRequest(f"delivery {other.id} of the same message is still in progress")
        return await self.add(d.kind, d.owner_type, d.owner_id, run_id=d.run_id, payload=d.payload,
                              commit_status=d.commit_status, redelivery_of=root)

    async def expire(self, kind: DeliveryKind, older_than: float) -> int:
        """Delete the deliveries of ``kind`` created more than ``older_than`` seconds ago."""
        cutoff = self.now().timestamp() - older_than
        deleted = 0
        for kv in (await self.coord.range(DELIVERIES)).kvs:
            d = Delivery.from_json(kv.value)
            if d.kind is not kind or d.created_at is None or d.created_at.timestamp() >= cutoff:
                continue
            await self.coord.txn([], [Delete(DELIVERIES + d.id), Delete(PENDING + d.id), Delete(_owner_key(d))])
            deleted += 1
        return deleted


@attrs.frozen
class RunState:
    phase: str
    result: str
    at: datetime


class RunStates:
    """The last phase/result notified for each run, so that an event seen twice (a catch-up after
    a reconnection, then the stream) is handled once, and the runs still in progress at the last
    event are known after a restart."""

    def __init__(self, coord: Coordination, *, now: Callable[[], datetime] = utcnow) -> None:
        self.coord = coord
        self.now = now

    async def get(self, run_id: str) -> RunState | None:
        kv = await self.coord.get(RUNSTATES + run_id)
        return _run_state(kv.value) if kv is not None else None

    async def set(self, run_id: str, phase: str, result: str) -> None:
        value = {"phase": phase, "result": result, "at": self.now().isoformat()}
        await self.coord.put(RUNSTATES + run_id, json.dumps(value).encode())

    async def unfinished(self) -> list[str]:
        """The runs whose last notified phase was not final."""
        rr = await self.coord.range(RUNSTATES)
        return [kv.key[len(RUNSTATES):] for kv in rr.kvs if _run_state(kv.value).phase not in FINAL_PHASES]

    async def expire(self, older_than: float) -> int:
        cutoff = self.now().timestamp() - older_than
        old = [kv.key for kv in (await self.coord.range(RUNSTATES)).kvs if _run_state(kv.value).at.timestamp() < cutoff]
        for key in old:
            await self.coord.delete(key)
        return len(old)


def _run_state(raw: bytes) -> RunState:
    value = json.loads(raw)
    return RunState(str(value["phase"]), str(value["result"]), datetime.fromisoformat(value["at"]))


def _status(value: str) -> DeliveryStatus:
    try:
        return DeliveryStatus(value)
    except ValueError:
        valid = ", ".join(s.value for s in DeliveryStatus)
        raise BadRequest(f"wrong deliverystatus {value!r} (expected one of {valid})") from None
