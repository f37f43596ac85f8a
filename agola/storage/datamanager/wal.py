"""The write path (spec §4.3) and WAL reading.

A write stores the WAL data file in object storage first (durable), then commits it with one
coordination transaction that, at the same time, checks every change group of the caller's token,
bumps ``walseq``, moves ``walsdata`` and creates ``wals/<seq>``. The write is acknowledged only
after that transaction succeeded, so an acknowledged write survives a crash of this process.

Concurrency: two writers in different processes race on ``walsdata``; the loser re-reads and
retries unless one of *its change groups* moved, which is a ``Conflict`` for the caller. WAL
sequences therefore grow in commit order and every WAL names its predecessor, which lets the readdb
feed detect gaps and resets. Inside one process, commits are serialised by a lock so concurrent
callers do not burn transactions against each other.
"""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from typing import Callable

import attrs

from agola.errors import BadRequest, Conflict, NotExist
from agola.storage.coord.base import Compare, Coordination, Get, KeyValue, Put, RangeResult
from agola.storage.datamanager.types import (
    CHANGEGROUPS_MINREV_KEY,
    CHANGEGROUPS_PREFIX,
    WALS_PREFIX,
    WALSDATA_KEY,
    WALSEQ_KEY,
    Action,
    ChangeGroupsUpdateToken,
    DataManagerOptions,
    NotInitialized,
    Paths,
    Seq,
    seq_from_json,
    WalData,
    WalStatus,
    decode_wal_data,
    encode_wal_data,
    parse_walsdata,
    validate_change_group,
    wal_key,
    walsdata_json,
)
from agola.storage.objectstorage.base import ObjectStorage
from agola.util.log import get_logger

log = get_logger(__name__)

# A writer losing the walsdata race this many times in a row gives up with a Conflict.
MAX_COMMIT_ATTEMPTS = 200


@attrs.frozen
class _Head:
    """What the next commit compares against: the last walseq / walsdata this instance saw."""

    walseq: Seq
    walseq_mod: int
    last_committed: str
    walsdata_mod: int


class WalReader:
    """Reads WAL data files; they are immutable, so decoded ones are kept in a small LRU."""

    def __init__(self, ost: ObjectStorage, paths: Paths, cache_entries: int = 1024) -> None:
        self._ost = ost
        self._paths = paths
        self._cache: collections.OrderedDict[str, list[Action]] = collections.OrderedDict()
        self._cache_entries = cache_entries

    async def actions(self, wal_data_file_id: str) -> list[Action]:
        cached = self._cache.get(wal_data_file_id)
        if cached is not None:
            self._cache.move_to_end(wal_data_file_id)
            return cached
        path = self._paths.wal_data(wal_data_file_id)
        raw = await self._ost.read_all(path)
        actions = decode_wal_data(raw, path)
        self._cache[wal_data_file_id] = actions
        if len(self._cache) > self._cache_entries:
            self._cache.popitem(last=False)
        return actions


def parse_wal_kv(kv: KeyValue) -> WalData:
    return WalData.from_json(kv.value, kv.key)


async def list_etcd_wals(coord: Coordination, revision: int = 0) -> tuple[list[WalData], RangeResult]:
    rr = await coord.range(WALS_PREFIX, revision=revision)
    return [parse_wal_kv(kv) for kv in rr.kvs], rr


class WalWriter:
    def __init__(
        self,
        coord: Coordination,
        ost: ObjectStorage,
        paths: Paths,
        datatypes: list[str],
        options: DataManagerOptions,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._coord = coord
        self._ost = ost
        self._paths = paths
        self._datatypes = set(datatypes)
        self._options = options
        self._on_commit = on_commit
        self._lock = asyncio.Lock()
        self._head: _Head | None = None

    def forget_head(self) -> None:
        """Drop the cached head (after init/import rewrote the WAL keys)."""
        self._head = None

    def _validate(self, actions: list[Action], token: ChangeGroupsUpdateToken) -> None:
        if not actions:
            raise BadRequest("empty wal actions")
        for action in actions:
            if action.data_type not in self._datatypes:
                raise BadRequest(f"unknown data type {action.data_type!r}")
            if not action.id or "\n" in action.id:
                raise BadRequest(f"invalid object id {action.id!r}")
        for name in token.change_groups_revisions:
            validate_change_group(name)

    async def write_wal(
        self, actions: list[Action], token: ChangeGroupsUpdateToken | None = None
    ) -> ChangeGroupsUpdateToken:
        token = token or ChangeGroupsUpdateToken(0, {})
        self._validate(actions, token)
        file_id = uuid.uuid4().hex
        await self._ost.write(self._paths.wal_data(file_id), encode_wal_data(actions), persist=True)
        try:
            async with self._lock:
                revision = await self._commit(file_id, token)
        except Conflict:
            await self._forget_orphan(file_id)
            raise
        if self._on_commit is not None:
            self._on_commit()
        return ChangeGroupsUpdateToken(revision, {name: revision for name in token.change_groups_revisions})

    async def _forget_orphan(self, file_id: str) -> None:
        try:
            await self._ost.delete(self._paths.wal_data(file_id))
        except (NotExist, ConnectionError):
            pass

    async def _read_head(self) -> _Head:
        res = await self._coord.txn([], [Get(WALSEQ_KEY), Get(WALSDATA_KEY)])
        return self._head_from(res.responses[0], res.responses[1])

    def _head_from(self, walseq_rr: RangeResult | None, walsdata_rr: RangeResult | None) -> _Head:
        walsdata = walsdata_rr.kvs[0] if walsdata_rr and walsdata_rr.kvs else None
        if walsdata is None:
            raise NotInitialized()
        walseq = walseq_rr.kvs[0] if walseq_rr and walseq_rr.kvs else None
        seq = seq_from_json(walseq.value, WALSEQ_KEY) if walseq else Seq(0, 0)
        return _Head(seq, walseq.mod_revision if walseq else 0, parse_walsdata(walsdata.value), walsdata.mod_revision)

    def _compares(self, head: _Head, seq: str, token: ChangeGroupsUpdateToken) -> list[Compare]:
        cmp = [
            Compare.mod(WALSEQ_KEY, "==", head.walseq_mod),
            Compare.mod(WALSDATA_KEY, "==", head.walsdata_mod),
            Compare.version(wal_key(seq), "==", 0),
        ]
        for name, rev in sorted(token.change_groups_revisions.items()):
            key = CHANGEGROUPS_PREFIX + name
            cmp.append(Compare.mod(key, "==", rev) if rev > 0 else Compare.create(key, "==", 0))
        if token.cur_revision > 0:
            limit = token.cur_revision + self._options.change_group_compact_range
            cmp.append(Compare.mod(CHANGEGROUPS_MINREV_KEY, "<", limit))
        return cmp

    async def _commit(self, file_id: str, token: ChangeGroupsUpdateToken) -> int:
        groups = sorted(token.change_groups_revisions.items())
        for _ in range(MAX_COMMIT_ATTEMPTS):
            head = self._head or await self._read_head()
            seq = Seq(head.walseq.epoch or int(time.time()), head.walseq.c + 1)
            seq_s = str(seq)
            wal = WalData(file_id, WalStatus.COMMITTED, seq_s, head.last_committed)
            # The WAL key comes before the change groups: a feed that splits this revision's events
            # never shows fresh change group revisions with stale data.
            success = [
                Put(WALSEQ_KEY, seq.to_json()),
                Put(WALSDATA_KEY, walsdata_json(seq_s)),
                Put(wal_key(seq_s), wal.to_json()),
            ] + [Put(CHANGEGROUPS_PREFIX + name, b"") for name, _ in groups]
            failure = [Get(WALSEQ_KEY), Get(WALSDATA_KEY), Get(CHANGEGROUPS_MINREV_KEY)] + [
                Get(CHANGEGROUPS_PREFIX + name) for name, _ in groups
            ]
            res = await self._coord.txn(self._compares(head, seq_s, token), success, failure)
            if res.succeeded:
                self._head = _Head(seq, res.revision, seq_s, res.revision)
                return res.revision
            self._head = None
            self._check_token(token, groups, res.responses)
            self._head = self._head_from(res.responses[0], res.responses[1])
        raise Conflict("wal concurrency error: wals groups already updated")

    def _check_token(
        self,
        token: ChangeGroupsUpdateToken,
        groups: list[tuple[str, int]],
        responses: list[RangeResult | None],
    ) -> None:
        minrev = _first(responses[2])
        if token.cur_revision > 0 and minrev is not None:
            if minrev.mod_revision >= token.cur_revision + self._options.change_group_compact_range:
                raise Conflict("wal concurrency error: change groups update token too old")
        for (name, rev), rr in zip(groups, responses[3:]):
            kv = _first(rr)
            moved = (kv is None or kv.mod_revision != rev) if rev > 0 else kv is not None
            if moved:
                raise Conflict(f"wal concurrency error: change groups already updated ({name})")


def _first(rr: RangeResult | None) -> KeyValue | None:
    return rr.kvs[0] if rr is not None and rr.kvs else None
