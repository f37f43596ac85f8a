"""The write path (spec §4.3) and WAL reading.

A WAL (one write: a list of actions) is committed by one coordination transaction that checks
every change group of the caller's token, bumps ``walseq``, moves ``walsdata`` and creates
``wals/<seq>``. Small WALs (``inline_wal_max_bytes``) travel inside that coordination value and
reach object storage with the sync job; larger ones are written to object storage (durably)
before the transaction. The write is acknowledged only after the transaction succeeded, so an
acknowledged write survives a crash of this process.

Concurrency: two writers in different processes race on ``walsdata``; the loser re-reads and
retries unless one of *its change groups* moved, which is a ``Conflict`` for the caller. WAL
sequences therefore grow in commit order and every WAL names its predecessor, which lets the readdb
feed detect gaps and resets. Inside one process a single committer task runs the transactions:
writes queued while one is in flight are committed together by the next one (group commit), each
as its own WAL, so concurrent callers never burn transactions against each other.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
import uuid
from collections.abc import Callable

import attrs

from agola.errors import BadRequest, Conflict, NotExist
from agola.storage.coord.base import Compare, Coordination, Get, KeyValue, Op, Put, RangeResult
from agola.storage.datamanager.storagewals import SEGMENT_SUFFIX, StorageWalObject, read_storage_wal_object
from agola.storage.datamanager.types import (
    CHANGEGROUPS_MINREV_KEY,
    CHANGEGROUPS_PREFIX,
    WALS_PREFIX,
    WALSDATA_KEY,
    WALSEQ_KEY,
    Action,
    ChangeGroupsUpdateToken,
    CorruptData,
    DataManagerOptions,
    NotInitialized,
    Paths,
    Seq,
    WalData,
    WalStatus,
    committed_wal_json,
    decode_wal_data,
    encode_wal_data,
    parse_walsdata,
    seq_from_json,
    seq_strings,
    validate_change_group,
    wal_key,
    walsdata_json,
)
from agola.storage.objectstorage.base import ObjectStorage
from agola.util.log import get_logger

log = get_logger(__name__)

# A writer losing the walsdata race this many times in a row gives up with a Conflict.
MAX_COMMIT_ATTEMPTS = 200
# WALs committed by one coordination transaction at most.
MAX_GROUP_COMMIT = 64
MAX_GROUP_COMMIT_BYTES = 512 * 1024
MAX_GROUP_COMMIT_OPS = 100


@attrs.frozen
class _Head:
    """What the next commit compares against: the last walseq / walsdata this instance saw."""

    walseq: Seq
    walseq_mod: int
    last_committed: str
    walsdata_mod: int


@attrs.define
class _Pending:
    file_id: str
    token: ChangeGroupsUpdateToken
    inline: bytes | None
    future: asyncio.Future[int]


class RecentWals:
    """The WALs this process committed and the sync job has not stored yet, as committed (key,
    value, revision): the sync job takes them from here instead of ranging over coordination and
    decoding what it wrote. Only a run contiguous from the last stored WAL is handed out (another
    instance's commits leave gaps: the sync job then reads coordination)."""

    def __init__(self, max_entries: int = 4096) -> None:
        self._wals: collections.deque[tuple[KeyValue, WalData]] = collections.deque(maxlen=max_entries)

    def add(self, kv: KeyValue, wal: WalData) -> None:
        self._wals.append((kv, wal))

    def clear(self) -> None:
        self._wals.clear()

    def after(self, last_stored: str) -> list[tuple[KeyValue, WalData]] | None:
        """The WALs committed after ``last_stored``, in order; None if they are not all known."""
        wals = self._wals
        while wals and wals[0][1].wal_sequence <= last_stored:
            wals.popleft()
        if not wals or not last_stored or wals[0][1].previous_wal_sequence != last_stored:
            return None
        run = list(wals)
        for (_, prev), (_, wal) in itertools.pairwise(run):
            if wal.previous_wal_sequence != prev.wal_sequence:
                return None
        return run


class WalReader:
    """Reads WAL actions; WALs are immutable, so they are kept in a small LRU by data file id,
    decoded on first use (the sync job caches every WAL it writes, most are read once or never)."""

    def __init__(self, ost: ObjectStorage, paths: Paths, cache_entries: int = 1024) -> None:
        self._ost = ost
        self._paths = paths
        # file id -> decoded actions, or (raw WAL data, where it comes from) not decoded yet
        self._cache: collections.OrderedDict[str, list[Action] | tuple[bytes, str]] = collections.OrderedDict()
        self._cache_entries = cache_entries

    async def wal_actions(self, wal: WalData) -> list[Action]:
        """The actions of a WAL listed in coordination (inline, in a segment or in its data file)."""
        if wal.inline_data is not None:
            return decode_wal_data(wal.inline_data, wal_key(wal.wal_sequence))
        if wal.segment:
            cached = self._cached(wal.wal_data_file_id)
            if cached is not None:
                return cached
            last, _, first = wal.segment.partition(".")
            path = self._paths.wal_segment(wal.segment)
            for entry in await read_storage_wal_object(self._ost, self._paths,
                                                       StorageWalObject(wal.segment + SEGMENT_SUFFIX, first, last)):
                if entry.inline_data is not None:
                    self._keep(entry.wal_data_file_id, (entry.inline_data, f"{path} ({entry.wal_sequence})"))
            cached = self._cached(wal.wal_data_file_id)
            if cached is None:
                raise CorruptData(path, f"no wal {wal.wal_sequence} in segment")
            return cached
        return await self.actions(wal.wal_data_file_id)

    async def storage_wal_actions(self, wal: WalData) -> list[Action]:
        """The actions of a WAL read from storage (``iter_storage_wals``)."""
        if wal.inline_data is not None:
            cached = self._cached(wal.wal_data_file_id)
            if cached is not None:
                return cached
            actions = decode_wal_data(wal.inline_data, f"{self._paths.wal_segment(wal.segment)} ({wal.wal_sequence})")
            self._keep(wal.wal_data_file_id, actions)
            return actions
        return await self.actions(wal.wal_data_file_id)

    async def actions(self, wal_data_file_id: str) -> list[Action]:
        cached = self._cached(wal_data_file_id)
        if cached is not None:
            return cached
        path = self._paths.wal_data(wal_data_file_id)
        actions = decode_wal_data(await self._ost.read_all(path), path)
        self._keep(wal_data_file_id, actions)
        return actions

    def remember(self, wal_data_file_id: str, raw: bytes, where: str) -> None:
        """Cache a WAL just written to storage: the checkpoint reads it next, and reading each one
        back cost more than the sync job's write of it."""
        self._keep(wal_data_file_id, (raw, where))

    def _cached(self, wal_data_file_id: str) -> list[Action] | None:
        cached = self._cache.get(wal_data_file_id)
        if cached is None:
            return None
        self._cache.move_to_end(wal_data_file_id)
        if isinstance(cached, tuple):
            cached = decode_wal_data(*cached)
            self._cache[wal_data_file_id] = cached
        return cached

    def _keep(self, wal_data_file_id: str, entry: list[Action] | tuple[bytes, str]) -> None:
        self._cache[wal_data_file_id] = entry
        self._cache.move_to_end(wal_data_file_id)
        if len(self._cache) > self._cache_entries:
            self._cache.popitem(last=False)


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
        self._head: _Head | None = None
        self.recent = RecentWals()
        self._queue: list[_Pending] = []
        self._committer: asyncio.Task[None] | None = None
        # WAL data file ids: a random prefix per writer and a counter (uuid4 per write, a getrandom
        # syscall each, was ~9% of the write's event loop time).
        self._id_prefix = uuid.uuid4().hex[:16]
        self._ids = itertools.count()

    def forget_head(self) -> None:
        """Drop the cached head (after init/import rewrote the WAL keys)."""
        self._head = None
        self.recent.clear()

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
        file_id = f"{self._id_prefix}{next(self._ids):016x}"
        data = encode_wal_data(actions)
        inline: bytes | None = data
        if len(data) > self._options.inline_wal_max_bytes:
            await self._ost.write(self._paths.wal_data(file_id), data, persist=True)
            inline = None
        pending = _Pending(file_id, token, inline, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_loop(), name="datamanager-wal-commit")
        # Not shielded: the committer only completes futures still pending, and a cancelled write
        # may still commit (the outcome of a cancelled write is unknown, as with etcd).
        try:
            revision = await pending.future
        except Conflict:
            if inline is None:
                await self._forget_orphan(file_id)
            raise
        if self._on_commit is not None:
            self._on_commit()
        return ChangeGroupsUpdateToken(revision, {name: revision for name in token.change_groups_revisions})

    async def _commit_loop(self) -> None:
        """Group commit: every write queued while a transaction runs goes into the next one."""
        while self._queue:
            batch: list[_Pending] = []
            used: set[str] = set()
            rest: list[_Pending] = []
            size = ops = 0
            for p in self._queue:
                names = set(p.token.change_groups_revisions)
                inline = len(p.inline or b"")
                cost = 1 + len(names)
                # Two writes on one change group never share a transaction: the second one must
                # see the first one's revision (and conflict). The caps keep a transaction well
                # under etcd's limits (1.5 MiB per request, 128 operations per txn branch).
                full = batch and (
                    len(batch) >= MAX_GROUP_COMMIT
                    or size + inline > MAX_GROUP_COMMIT_BYTES
                    or ops + cost > MAX_GROUP_COMMIT_OPS
                )
                if full or names & used:
                    rest.append(p)
                else:
                    batch.append(p)
                    used |= names
                    size += inline
                    ops += cost
            self._queue = rest
            try:
                await self._commit(batch)
            except Exception as exc:  # noqa: BLE001 - handed to every waiting writer
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)

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

    def _compares(self, head: _Head, seqs: list[str], batch: list[_Pending]) -> list[Compare]:
        cmp = [
            Compare.mod(WALSEQ_KEY, "==", head.walseq_mod),
            Compare.mod(WALSDATA_KEY, "==", head.walsdata_mod),
        ]
        if head.walseq_mod == 0:
            # No walseq to guard the new WAL keys (every transaction creating one also moves
            # walseq, so an unchanged walseq means they are free): check each key is new.
            cmp += [Compare.version(wal_key(seq), "==", 0) for seq in seqs]
        for p in batch:
            for name, rev in sorted(p.token.change_groups_revisions.items()):
                key = CHANGEGROUPS_PREFIX + name
                cmp.append(Compare.mod(key, "==", rev) if rev > 0 else Compare.create(key, "==", 0))
        oldest = min((p.token.cur_revision for p in batch if p.token.cur_revision > 0), default=0)
        if oldest > 0:
            cmp.append(Compare.mod(CHANGEGROUPS_MINREV_KEY, "<", oldest + self._options.change_group_compact_range))
        return cmp

    async def _commit(self, batch: list[_Pending]) -> None:
        for _ in range(MAX_COMMIT_ATTEMPTS):
            head = self._head or await self._read_head()
            epoch = head.walseq.epoch or int(time.time())
            last = Seq(epoch, head.walseq.c + len(batch))
            seqs = seq_strings(epoch, head.walseq.c + 1, len(batch))
            names = sorted({name for p in batch for name in p.token.change_groups_revisions})
            success: list[Op] = [Put(WALSEQ_KEY, last.to_json()), Put(WALSDATA_KEY, walsdata_json(seqs[-1]))]
            previous = head.last_committed
            wals: list[tuple[str, bytes, WalData]] = []
            for p, seq in zip(batch, seqs):
                wal = WalData(p.file_id, WalStatus.COMMITTED, seq, previous, p.inline)
                key, value = wal_key(seq), committed_wal_json(p.file_id, seq, previous, p.inline)
                success.append(Put(key, value))
                wals.append((key, value, wal))
                previous = seq
            # WAL keys come before the change groups: a feed that splits this revision's events
            # never shows fresh change group revisions with stale data.
            success += [Put(CHANGEGROUPS_PREFIX + name, b"") for name in names]
            failure: list[Op] = [Get(WALSEQ_KEY), Get(WALSDATA_KEY), Get(CHANGEGROUPS_MINREV_KEY)]
            failure += [Get(CHANGEGROUPS_PREFIX + name) for name in names]
            res = await self._coord.txn(self._compares(head, seqs, batch), success, failure)
            if res.succeeded:
                self._head = _Head(last, res.revision, seqs[-1], res.revision)
                for key, value, wal in wals:
                    self.recent.add(KeyValue(key, value, res.revision, res.revision, 1), wal)
                for p in batch:
                    if not p.future.done():
                        p.future.set_result(res.revision)
                return
            self._head = None
            current = {name: _first(rr) for name, rr in zip(names, res.responses[3:])}
            minrev = _first(res.responses[2])
            still: list[_Pending] = []
            for p in batch:
                problem = self._check_token(p.token, current, minrev)
                if problem:
                    if not p.future.done():
                        p.future.set_exception(Conflict(problem))
                else:
                    still.append(p)
            batch = still
            if not batch:
                return
            self._head = self._head_from(res.responses[0], res.responses[1])
        for p in batch:
            if not p.future.done():
                p.future.set_exception(Conflict("wal concurrency error: wals groups already updated"))

    def _check_token(
        self, token: ChangeGroupsUpdateToken, current: dict[str, KeyValue | None], minrev: KeyValue | None
    ) -> str:
        """Why this token cannot commit ("" if it can)."""
        if token.cur_revision > 0 and minrev is not None:
            if minrev.mod_revision >= token.cur_revision + self._options.change_group_compact_range:
                return "wal concurrency error: change groups update token too old"
        for name, rev in token.change_groups_revisions.items():
            kv = current.get(name)
            moved = (kv is None or kv.mod_revision != rev) if rev > 0 else kv is not None
            if moved:
                return f"wal concurrency error: change groups already updated ({name})"
        return ""


def _first(rr: RangeResult | None) -> KeyValue | None:
    return rr.kvs[0] if rr is not None and rr.kvs else None
