"""The single-process Coordination: etcd's semantics persisted in one sqlite database.

Layout under ``data_dir``: ``coord.db`` (sqlite, WAL mode) and ``lock`` (held with an exclusive
``flock`` for as long as the store is open, so a second process is refused with an error naming
the directory).

Every SQL statement runs on one dedicated thread, so writes are serialised exactly like etcd's
single raft log: each write transaction that changes something takes the next global revision.
Tables: ``kv`` (current state), ``events`` (the history that watches and ``range(revision=...)``
read; compacted beyond ``history`` revisions, keeping each key's latest version as etcd does) and
``leases``. Leases live in memory with their deadline; a reaper thread revokes expired ones, which
deletes their keys and emits delete events. On reopen, persisted leases get a full TTL again
(etcd does the same on leader change).

Several handles in one process on the same directory (different prefixes) share one store.
Mutexes are not stored: the store's ``LockTable`` (``localmutex``), shared by those handles, is
exclusive because no other process can open the directory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import fcntl
import os
import queue
import secrets
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, TypeVarTuple

from agola.errors import BadRequest, NotExist, Unavailable
from agola.storage.coord.base import (
    Closed,
    Compacted,
    Compare,
    Coordination,
    Delete,
    Event,
    Get,
    KeyValue,
    Lease,
    Mutex,
    Op,
    Put,
    RangeResult,
    TxnResult,
    Watcher,
)
from agola.storage.coord.damage import CorruptStore, check_wal_header
from agola.storage.coord.lease import KeepaliveLease
from agola.storage.coord.localmutex import LocalMutex, LockTable
from agola.util.log import get_logger
from agola.util.privatefiles import private_dir

log = get_logger(__name__)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

DEFAULT_HISTORY = 100_000  # revisions of history kept for watches and ranges at a revision
_WATCH_BATCH_REVS = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kv (
    key BLOB PRIMARY KEY, value BLOB NOT NULL, create_rev INTEGER NOT NULL,
    mod_rev INTEGER NOT NULL, version INTEGER NOT NULL, lease INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_lease ON kv (lease) WHERE lease != 0;
CREATE TABLE IF NOT EXISTS events (
    rev INTEGER NOT NULL, idx INTEGER NOT NULL, key BLOB NOT NULL, deleted INTEGER NOT NULL,
    value BLOB NOT NULL, create_rev INTEGER NOT NULL, version INTEGER NOT NULL, lease INTEGER NOT NULL,
    prev_value BLOB, prev_create INTEGER, prev_mod INTEGER, prev_version INTEGER, prev_lease INTEGER,
    PRIMARY KEY (rev, idx)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_key ON events (key, rev);
CREATE TABLE IF NOT EXISTS leases (id INTEGER PRIMARY KEY, ttl REAL NOT NULL);
"""

_KV_COLS = "key, value, create_rev, mod_rev, version, lease"
_EV_DATA_COLS = (
    "key, deleted, value, create_rev, version, lease, prev_value, prev_create, prev_mod, prev_version, prev_lease"
)
_EV_COLS = f"rev, {_EV_DATA_COLS}"


def prefix_end(prefix: bytes) -> bytes | None:
    """The first key after every key starting with ``prefix`` (None: no upper bound)."""
    p = bytearray(prefix)
    for i in range(len(p) - 1, -1, -1):
        if p[i] < 0xFF:
            p[i] += 1
            return bytes(p[: i + 1])
    return None


def _compare(actual: bytes | int, op: str, operand: bytes | int) -> bool:
    if op == "==":
        return actual == operand
    if op == "!=":
        return actual != operand
    if op == "<":
        return actual < operand  # type: ignore[operator]  # one kind on both sides: bytes (value) or int (revision)
    if op == ">":
        return actual > operand  # type: ignore[operator]  # one kind on both sides: bytes (value) or int (revision)
    raise BadRequest(f"unknown compare operator {op!r}")


# ---------------------------------------------------------------------------------------------
# The shared store (one per directory per process). Methods named ``_x_*`` run on its thread.


class _Write:
    """The state of one write transaction: the revision it would take and the events it made."""

    def __init__(self, revision: int) -> None:
        self.revision = revision
        self.events: list[tuple[Any, ...]] = []


_Callback = Callable[[Any, BaseException | None], None]


class _Store:
    def __init__(self, data_dir: Path, history: int) -> None:
        self.data_dir = data_dir
        self.history = history
        self.refs = 0
        self.closed = False
        self._lock_fd = self._take_process_lock(data_dir)
        self._conn: sqlite3.Connection | None = None
        # ``revision`` is the last committed revision (what other threads may read); ``_rev`` is
        # the worker thread's view, ahead of it while a batch is being committed.
        self.revision = 0
        self._rev = 0
        self.compact_revision = 0
        self._leases: dict[int, list[float]] = {}  # id -> [ttl, monotonic deadline]
        # The mutexes of every handle: in memory, since only this process can open the store.
        self.locks = LockTable()
        self._lease_cond = threading.Condition()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._waiters_lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...], _Callback] | None] = (
            queue.SimpleQueue()
        )
        self._worker = threading.Thread(target=self._work, name="coord-embedded", daemon=True)
        self._worker.start()
        try:
            self.call_sync(self._x_open)
        except BaseException:
            self._queue.put(None)
            self._worker.join(5)
            os.close(self._lock_fd)
            raise
        self._reaper = threading.Thread(target=self._reap_leases, name="coord-lease-reaper", daemon=True)
        self._reaper.start()

    # -- lifecycle ------------------------------------------------------------------------------

    @staticmethod
    def _take_process_lock(data_dir: Path) -> int:
        private_dir(data_dir)  # coord.db holds every key, secrets included
        path = data_dir / "lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise Unavailable(
                    f"embedded coordination store {str(data_dir)!r} is already in use by another process"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return fd

    def _x_open(self) -> None:
        path = self.data_dir / "coord.db"
        check_wal_header(path.with_name(path.name + "-wal"))
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a committed txn survives a process crash (not an OS crash).
            conn.execute("PRAGMA synchronous=NORMAL")
            problems = [str(r[0]) for r in conn.execute("PRAGMA quick_check").fetchall()]
            if problems != ["ok"]:
                raise CorruptStore(path, "; ".join(problems[:3]))
            conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            conn.close()
            if (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
                raise CorruptStore(path, str(exc)) from None
            raise
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        self.revision = self._rev = int(meta.get("revision", 0))
        self.compact_revision = int(meta.get("compact_revision", 0))
        now = time.monotonic()
        for lease_id, ttl in conn.execute("SELECT id, ttl FROM leases"):
            self._leases[lease_id] = [ttl, now + ttl]

    def close(self) -> None:
        self.closed = True
        with self._lease_cond:
            self._lease_cond.notify_all()
        self._reaper.join(5)
        self._queue.put(None)  # the worker closes the database once the queue is drained
        self._worker.join(30)
        self._notify_all()
        os.close(self._lock_fd)

    # -- the worker thread: group commit ---------------------------------------------------------

    def _work(self) -> None:
        """Run queued calls in batches: one sqlite transaction (and one fsync-free WAL commit)
        per batch, each call in its own savepoint so a failing call leaves the others intact."""
        while True:
            item = self._queue.get()
            if item is None:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                self._fail_leftovers()
                return
            batch = [item]
            while len(batch) < 256:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(nxt)
            self._run_batch(batch)

    def _fail_leftovers(self) -> None:
        """Calls that raced with close() get an error instead of waiting forever."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                item[2](None, Closed("embedded coordination store is closed"))

    def _run_batch(self, batch: list[tuple[Callable[..., Any], tuple[Any, ...], _Callback]]) -> None:
        conn = self._conn
        results: list[tuple[Any, BaseException | None]] = []
        if conn is None:  # opening, or closed: run bare (open/close themselves)
            for fn, args, _ in batch:
                try:
                    results.append((fn(*args), None))
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    results.append((None, exc))
        else:
            try:
                conn.execute("BEGIN IMMEDIATE")
                for fn, args, _ in batch:
                    conn.execute("SAVEPOINT call")
                    try:
                        res: Any = fn(*args)
                        conn.execute("RELEASE call")
                        results.append((res, None))
                    except BaseException as exc:  # noqa: BLE001 - handed to the caller
                        conn.execute("ROLLBACK TO call")
                        conn.execute("RELEASE call")
                        results.append((None, exc))
                if conn.in_transaction:
                    conn.execute("COMMIT")
            except Exception as exc:  # noqa: BLE001 - the whole batch failed to commit
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                self._rev = self.revision
                err = Unavailable(f"embedded coordination store: commit failed: {exc}")
                results = [(None, err)] * len(batch)
        changed = self._rev != self.revision
        self.revision = self._rev
        if changed:
            self._notify_all()
        for (_, _, callback), (res, error) in zip(batch, results):
            callback(res, error)
        if self._conn is not None and self.revision - self.compact_revision > self.history + max(self.history // 10, 1):
            self._auto_compact()

    def _auto_compact(self) -> None:
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            self._x_compact(self.revision - self.history)
            conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - retried after the next writes
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            log.warning("history compaction failed", error=repr(exc))

    def call_sync(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()

        def done(res: Any, exc: BaseException | None) -> None:
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(res)

        self._queue.put((fn, args, done))
        return fut.result()

    async def run(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        if self.closed:
            raise Closed("embedded coordination store is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()

        def deliver(res: Any, exc: BaseException | None) -> None:
            if fut.done():
                return
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(res)

        def done(res: Any, exc: BaseException | None) -> None:
            try:
                loop.call_soon_threadsafe(deliver, res, exc)
            except RuntimeError:  # the caller's loop is gone
                pass

        self._queue.put((fn, args, done))
        return await fut

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise Closed("embedded coordination store is closed")
        return self._conn

    # -- watch notification ----------------------------------------------------------------------

    def add_waiter(self, waiter: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        with self._waiters_lock:
            self._waiters.add(waiter)

    def remove_waiter(self, waiter: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        with self._waiters_lock:
            self._waiters.discard(waiter)

    def _notify_all(self) -> None:
        with self._waiters_lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop is closed: its watcher is gone
                self.remove_waiter((loop, event))

    # -- writes ----------------------------------------------------------------------------------

    def _x_write(self, body: Callable[[_Write], T]) -> tuple[T, int]:
        """Run ``body`` as one write; it takes the next revision iff it changed something.
        (The caller's batch provides the sqlite transaction.)"""
        w = _Write(self._rev + 1)
        result = body(w)
        if w.events:
            self.conn.executemany(
                f"INSERT INTO events (rev, idx, {_EV_DATA_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [(w.revision, i, *ev) for i, ev in enumerate(w.events)],
            )
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('revision', ?)", (w.revision,))
            self._rev = w.revision
        return result, self._rev

    def _x_current(self, key: bytes) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self.conn.execute(
            f"SELECT {_KV_COLS} FROM kv WHERE key = ?", (key,)
        ).fetchone()
        return row

    def _x_put(self, w: _Write, key: bytes, value: bytes, lease: int) -> None:
        if lease:
            with self._lease_cond:
                if lease not in self._leases:
                    raise NotExist(f"lease {lease:x} not found")
        cur = self._x_current(key)
        create = cur[2] if cur else w.revision
        version = cur[4] + 1 if cur else 1
        self.conn.execute(
            "INSERT OR REPLACE INTO kv VALUES (?,?,?,?,?,?)", (key, value, create, w.revision, version, lease)
        )
        prev = tuple(cur[1:]) if cur else (None,) * 5
        w.events.append((key, 0, value, create, version, lease, *prev))

    def _x_delete(self, w: _Write, key: bytes, end: bytes | None, is_range: bool) -> int:
        rows = self._x_scan(key, end, is_range)
        for row in rows:
            w.events.append((row[0], 1, b"", 0, 0, 0, *row[1:]))
        if rows:
            self.conn.executemany("DELETE FROM kv WHERE key = ?", [(row[0],) for row in rows])
        return len(rows)

    def _x_scan(self, key: bytes, end: bytes | None, is_range: bool, limit: int = 0) -> list[tuple[Any, ...]]:
        if not is_range:
            row = self._x_current(key)
            return [row] if row else []
        sql = f"SELECT {_KV_COLS} FROM kv WHERE key >= ?"
        args: list[Any] = [key]
        if end is not None:
            sql += " AND key < ?"
            args.append(end)
        sql += " ORDER BY key"
        if limit > 0:
            sql += f" LIMIT {int(limit)}"
        return self.conn.execute(sql, args).fetchall()

    def _x_range_at(self, key: bytes, end: bytes | None, revision: int, limit: int) -> list[tuple[Any, ...]]:
        """The keys under a prefix as they were at ``revision``, from the event history."""
        if revision > self._rev:
            raise BadRequest(f"revision {revision} is in the future (current {self._rev})")
        if revision < self.compact_revision:
            raise Compacted(compact_revision=self.compact_revision)
        sql = "SELECT key, deleted, value, create_rev, rev, version, lease FROM events WHERE key >= ? AND rev <= ?"
        args: list[Any] = [key, revision]
        if end is not None:
            sql += " AND key < ?"
            args.append(end)
        latest: dict[bytes, tuple[Any, ...]] = {}
        for row in self.conn.execute(sql + " ORDER BY key, rev, idx", args):
            latest[row[0]] = row
        rows = [(r[0], *r[2:]) for k, r in sorted(latest.items()) if not r[1]]
        return rows[:limit] if limit > 0 else rows

    def _x_compact(self, revision: int) -> None:
        """Forget history below ``revision``, keeping each key's latest version at that point."""
        if revision <= self.compact_revision:
            return
        revision = min(revision, self._rev)
        conn = self.conn
        conn.execute(
            "DELETE FROM events WHERE rev < :c AND (deleted = 1 OR EXISTS ("
            " SELECT 1 FROM events n WHERE n.key = events.key AND n.rev > events.rev AND n.rev <= :c))",
            {"c": revision},
        )
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('compact_revision', ?)", (revision,))
        self.compact_revision = revision

    def _x_events(self, key: bytes, end: bytes | None, start: int) -> tuple[list[tuple[Any, ...]], int]:
        """Events under a prefix in ``[start, start + batch)``; returns them and the next start."""
        if start < self.compact_revision:
            raise Compacted(compact_revision=self.compact_revision)
        hi = min(start + _WATCH_BATCH_REVS, self._rev + 1)
        if hi <= start:
            return [], start
        sql = f"SELECT {_EV_COLS} FROM events WHERE rev >= ? AND rev < ? AND key >= ?"
        args: list[Any] = [start, hi, key]
        if end is not None:
            sql += " AND key < ?"
            args.append(end)
        return self.conn.execute(sql + " ORDER BY rev, idx", args).fetchall(), hi

    # -- leases ----------------------------------------------------------------------------------

    def _x_grant(self, ttl: float) -> int:
        lease_id = secrets.randbits(62) or 1
        self.conn.execute("INSERT INTO leases VALUES (?, ?)", (lease_id, ttl))
        with self._lease_cond:
            self._leases[lease_id] = [ttl, time.monotonic() + ttl]
            self._lease_cond.notify_all()
        return lease_id

    def refresh(self, lease_id: int) -> float:
        with self._lease_cond:
            entry = self._leases.get(lease_id)
            if entry is None:
                return 0.0
            entry[1] = time.monotonic() + entry[0]
            return entry[0]

    def _x_revoke(self, lease_id: int) -> None:
        with self._lease_cond:
            self._leases.pop(lease_id, None)

        def body(w: _Write) -> None:
            self.conn.execute("DELETE FROM leases WHERE id = ?", (lease_id,))
            for (key,) in self.conn.execute("SELECT key FROM kv WHERE lease = ?", (lease_id,)).fetchall():
                self._x_delete(w, key, None, False)

        self._x_write(body)

    def _reap_leases(self) -> None:
        """Revoke leases whose deadline passed (runs on its own thread)."""
        while True:
            with self._lease_cond:
                if self.closed:
                    return
                now = time.monotonic()
                expired = [lid for lid, (_, deadline) in self._leases.items() if deadline <= now]
                if not expired:
                    nxt = min((d for _, d in self._leases.values()), default=now + 1.0)
                    self._lease_cond.wait(min(max(nxt - now, 0.005), 1.0))
                    continue
            for lease_id in expired:
                try:
                    self.call_sync(self._x_revoke, lease_id)
                except Exception as exc:  # noqa: BLE001 - store closing; the lease expires on reopen
                    if not self.closed:
                        log.warning("lease revoke failed", lease=f"{lease_id:x}", error=repr(exc))
                    return


_REGISTRY: dict[str, _Store] = {}
_REGISTRY_LOCK = threading.Lock()


def _acquire_store(data_dir: Path, history: int) -> _Store:
    key = os.path.realpath(data_dir)
    with _REGISTRY_LOCK:
        store = _REGISTRY.get(key)
        if store is None:
            store = _Store(Path(key), history)
            _REGISTRY[key] = store
        store.refs += 1
        return store


def _release_store(store: _Store) -> None:
    with _REGISTRY_LOCK:
        store.refs -= 1
        if store.refs > 0:
            return
        _REGISTRY.pop(str(store.data_dir), None)
    store.close()


# ---------------------------------------------------------------------------------------------
# The public handle.


class EmbeddedCoordination(Coordination):
    def __init__(self, store: _Store, prefix: str) -> None:
        self._store = store
        self._prefix = prefix.encode()
        self._leases: set[KeepaliveLease] = set()
        self._closed = False

    @classmethod
    async def open(cls, data_dir: str | os.PathLike[str], prefix: str, *, history: int = DEFAULT_HISTORY) -> EmbeddedCoordination:
        """Open (creating if needed) the store under ``data_dir``; keys live under ``prefix``."""
        store = await asyncio.to_thread(_acquire_store, Path(data_dir), history)
        return cls(store, prefix)

    # -- key mapping -----------------------------------------------------------------------------

    def _k(self, key: str) -> bytes:
        if self._closed:
            raise Closed("embedded coordination handle is closed")
        return self._prefix + key.encode()

    def _range_of(self, key: str, is_prefix: bool) -> tuple[bytes, bytes | None]:
        k = self._k(key)
        return k, (prefix_end(k) if is_prefix else None)

    def _kv(self, row: tuple[Any, ...]) -> KeyValue:
        return KeyValue(row[0][len(self._prefix):].decode(), bytes(row[1]), row[2], row[3], row[4], row[5])

    def _event(self, row: tuple[Any, ...]) -> Event:
        rev, key, deleted, value, create, version, lease, pv, pc, pm, pver, pl = row
        k = key[len(self._prefix):].decode()
        prev = KeyValue(k, bytes(pv), pc, pm, pver, pl) if pc is not None else None
        if deleted:
            return Event("delete", KeyValue(k, b"", 0, rev, 0, 0), prev)
        return Event("put", KeyValue(k, bytes(value), create, rev, version, lease), prev)

    # -- kv --------------------------------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        rows = await self._store.run(self._store._x_scan, self._k(key), None, False)
        return self._kv(rows[0]) if rows else None

    async def range(self, prefix: str, *, revision: int = 0, limit: int = 0) -> RangeResult:
        start, end = self._range_of(prefix, True)
        store = self._store

        def read() -> tuple[list[tuple[Any, ...]], int]:
            if revision > 0:
                return store._x_range_at(start, end, revision, limit), store._rev
            return store._x_scan(start, end, True, limit), store._rev

        rows, rev = await store.run(read)
        return RangeResult([self._kv(r) for r in rows], rev)

    async def put(self, key: str, value: bytes, *, lease: int = 0) -> int:
        k = self._k(key)
        _, rev = await self._store.run(self._store._x_write, lambda w: self._store._x_put(w, k, value, lease))
        return rev

    async def delete(self, key: str, *, prefix: bool = False) -> int:
        start, end = self._range_of(key, prefix)
        n, _ = await self._store.run(self._store._x_write, lambda w: self._store._x_delete(w, start, end, prefix))
        return n

    async def txn(
        self, compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] | None = None
    ) -> TxnResult:
        store = self._store

        def body(w: _Write) -> tuple[bool, list[RangeResult | None]]:
            ok = all(self._x_check(c) for c in compare)
            responses = [self._x_op(w, op) for op in (success if ok else failure or [])]
            return ok, responses

        (ok, responses), rev = await store.run(store._x_write, body)
        # Ranges read inside the txn report the revision the txn ended at, like etcd's header.
        fixed = [RangeResult(r.kvs, rev) if r is not None else None for r in responses]
        return TxnResult(ok, rev, fixed)

    def _x_check(self, c: Compare) -> bool:
        row = self._store._x_current(self._k(c.key))
        if c.target == "value":
            # etcd: a value comparison on a missing key always fails.
            return row is not None and _compare(bytes(row[1]), c.op, c.operand)
        actual = 0 if row is None else {"create": row[2], "mod": row[3], "version": row[4]}[c.target]
        return _compare(actual, c.op, c.operand)

    def _x_op(self, w: _Write, op: Op) -> RangeResult | None:
        store = self._store
        if isinstance(op, Put):
            store._x_put(w, self._k(op.key), op.value, op.lease)
            return None
        if isinstance(op, Delete):
            start, end = self._range_of(op.key, op.prefix)
            store._x_delete(w, start, end, op.prefix)
            return None
        if isinstance(op, Get):
            start, end = self._range_of(op.key, op.prefix)
            return RangeResult([self._kv(r) for r in store._x_scan(start, end, op.prefix)], store._rev)
        raise BadRequest(f"unknown txn op {op!r}")

    async def revision(self) -> int:
        if self._closed or self._store.closed:
            raise Closed("embedded coordination handle is closed")
        return self._store.revision

    async def compact(self, revision: int) -> None:
        """Forget history below ``revision`` (watches and ranges before it raise ``Compacted``)."""
        await self._store.run(self._store._x_compact, revision)

    # -- watch -----------------------------------------------------------------------------------

    def watch(self, prefix: str, *, start_revision: int = 0) -> Watcher:
        return _EmbeddedWatcher(self, prefix, start_revision)

    # -- leases and mutex ------------------------------------------------------------------------

    async def grant_lease(self, ttl: float) -> Lease:
        if ttl <= 0:
            raise BadRequest("lease TTL must be positive")
        store = self._store
        lease_id = await store.run(store._x_grant, float(ttl))

        async def refresh() -> float:
            if store.closed:
                raise Closed("embedded coordination store is closed")
            return store.refresh(lease_id)

        async def revoke() -> None:
            await store.run(store._x_revoke, lease_id)

        lease = KeepaliveLease(lease_id, float(ttl), refresh, revoke)
        self._leases.add(lease)
        lease._task.add_done_callback(lambda _t: self._leases.discard(lease))
        return lease

    def mutex(self, key: str, *, ttl: float = 5.0) -> Mutex:
        """An in-process mutex (``agola.storage.coord.localmutex``): no store write, no session,
        so ``ttl`` is unused; shared by every handle of this process on the same directory."""
        return LocalMutex(self._store.locks, self, self._prefix + (key.rstrip("/") + "/").encode())

    @property
    def closed(self) -> bool:
        return self._closed or self._store.closed

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._store.locks.drop_owner(self)
        for lease in list(self._leases):
            await lease.close()
        await asyncio.to_thread(_release_store, self._store)


class _EmbeddedWatcher(Watcher):
    def __init__(self, coord: EmbeddedCoordination, prefix: str, start_revision: int) -> None:
        self._coord = coord
        self._store = coord._store
        self._start, self._end = coord._range_of(prefix, True)
        # "From now on" is pinned when the watcher is created, so nothing written after watch()
        # returns can be missed.
        self._next = start_revision if start_revision > 0 else self._store.revision + 1
        self._buf: deque[Event] = deque()
        self._wake = asyncio.Event()
        self._waiter: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None
        self._closed = False

    def __aiter__(self) -> _EmbeddedWatcher:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self._buf:
                return self._buf.popleft()
            if self._closed:
                raise StopAsyncIteration
            if self._waiter is None:
                self._waiter = (asyncio.get_running_loop(), self._wake)
                self._store.add_waiter(self._waiter)
            self._wake.clear()
            if self._store.closed:
                raise Closed("embedded coordination store is closed")
            if self._store.revision >= self._next:
                rows, self._next = await self._store.run(self._store._x_events, self._start, self._end, self._next)
                self._buf.extend(self._coord._event(r) for r in rows)
                continue
            await self._wake.wait()

    async def aclose(self) -> None:
        self._closed = True
        self._buf.clear()
        self._wake.set()
        if self._waiter is not None:
            self._store.remove_waiter(self._waiter)
            self._waiter = None

