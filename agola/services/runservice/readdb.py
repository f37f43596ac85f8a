"""The runservice readdb (spec §3.10): a local aiosqlite projection answering run queries.

Two sources, two table families:

* ``run_active``: active runs, mirrored from coordination (``scheduler/runs/``): a paged range at
  revision R, then a watch from R+1. A deleted key (the run was archived) moves its last value to
  ``run_ost`` at once, so a run never disappears from listings while its archive WAL travels.
* ``run_ost`` and ``runcounter_ost``: archived runs and counters, mirrored from the datamanager
  through ``DataManager.feed`` (the contract of ``agola.storage.datamanager.feed``).

Each table stores the run JSON verbatim, so listings return stored bytes without re-encoding.
Group paths are stored with a trailing ``/`` so that a group filter is a prefix range on whole path
elements (``/project/X/branch/feature`` does not match ``.../branch/feature02``).

The sqlite file is handled by ``agola.storage.readdb.ReadDB``: schema versions (``MIGRATIONS``),
one writer transaction per batch or watch event, queries on read-only connections.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiosqlite
import attrs

from agola.errors import BadRequest, Unavailable
from agola.services.runservice.store import DT_RUN, DT_RUNCOUNTER, RUNS_PREFIX
from agola.storage.coord.base import Compacted, Coordination, Event
from agola.storage.datamanager import ActionType, DataManager, FeedBatch
from agola.storage.readdb import ReadDB
from agola.types.runservice import RunPhase
from agola.util.aio import cancel_and_wait, wait_event
from agola.util.log import get_logger

log = get_logger(__name__)

DEFAULT_LIMIT = 25
MAX_LIMIT = 40

# ``MIGRATIONS[i]`` takes the schema from version i to i + 1. The first one is the schema of the
# files written before versioning: ``IF NOT EXISTS`` lets such a file migrate as it is.
MIGRATIONS = [
    """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS changegroup_ost (name TEXT PRIMARY KEY, revision INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS run_active (
    id TEXT PRIMARY KEY, grouppath TEXT NOT NULL, phase TEXT NOT NULL, result TEXT NOT NULL,
    data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS run_ost (
    id TEXT PRIMARY KEY, grouppath TEXT NOT NULL, phase TEXT NOT NULL, result TEXT NOT NULL,
    data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runcounter_ost (groupid TEXT PRIMARY KEY, counter INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS run_active_group ON run_active (grouppath, id);
CREATE INDEX IF NOT EXISTS run_ost_group ON run_ost (grouppath, id);
CREATE INDEX IF NOT EXISTS run_ost_phase ON run_ost (phase, id);
""",
]

# How long a listing asked at a revision waits for the mirror to reach it (then lists anyway).
REVISION_WAIT = 5.0

_ARCHIVED_PHASES = {RunPhase.FINISHED.value, RunPhase.CANCELLED.value, RunPhase.SETUP_ERROR.value}


@attrs.frozen
class RunsQuery:
    phases: tuple[str, ...] = ()
    results: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    last_run: bool = False
    start: str = ""  # exclusive run id cursor
    limit: int = DEFAULT_LIMIT
    asc: bool = False

    def __attrs_post_init__(self) -> None:
        if self.limit < 0:
            raise BadRequest("limit must be >= 0")
        for phase in self.phases:
            try:
                RunPhase(phase)
            except ValueError:
                raise BadRequest(f"unknown run phase {phase!r}") from None


def _group_path(group: str) -> str:
    return group.rstrip("/") + "/"


def _row(raw: bytes | str) -> tuple[str, str, str, str, str]:
    text = raw.decode() if isinstance(raw, (bytes, bytearray)) else raw
    doc = json.loads(text)
    return (
        str(doc["id"]),
        _group_path(str(doc.get("group") or "")),
        str(doc.get("phase") or ""),
        str(doc.get("result") or ""),
        text,
    )


class RunReadDB:
    """Owns one sqlite file; ``start()`` runs the two mirroring loops, queries wait for both."""

    def __init__(self, path: str | os.PathLike[str], coord: Coordination, dm: DataManager) -> None:
        self.path = Path(path)
        self.coord = coord
        self.dm = dm
        self._db: ReadDB | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ost_synced = asyncio.Event()
        self._active_synced = asyncio.Event()
        self.active_revision = 0
        # Listeners told of every active run put (run events and tests use it).
        self.changed = asyncio.Condition()

    async def open(self) -> None:
        self._db = await ReadDB.open(self.path, MIGRATIONS)

    async def start(self) -> None:
        if self._db is None:
            await self.open()
        self._tasks = [
            asyncio.create_task(self._follow_ost(), name="runservice-readdb-ost"),
            asyncio.create_task(self._follow_active(), name="runservice-readdb-active"),
        ]

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(tasks)
        if self._db is not None:
            await self._db.close()
            self._db = None
        self._ost_synced.clear()
        self._active_synced.clear()

    @property
    def db(self) -> ReadDB:
        if self._db is None:
            raise Unavailable("runservice readdb is not open")
        return self._db

    @property
    def synced(self) -> bool:
        """Both mirrors (object storage runs, active runs) caught up."""
        return self._ost_synced.is_set() and self._active_synced.is_set()

    async def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        for synced in (self._ost_synced, self._active_synced):
            if not await wait_event(synced, max(0.0, deadline - asyncio.get_running_loop().time())):
                raise Unavailable("runservice readdb not initialized yet")

    # --- datamanager mirror -------------------------------------------------------------------

    async def _meta(self, key: str) -> str:
        row = await self.db.fetchone("SELECT value FROM meta WHERE key = ?", (key,))
        return str(row[0]) if row else ""

    async def _follow_ost(self) -> None:
        async def store(batch: FeedBatch) -> None:
            await self._apply_batch(batch)
            if batch.synced:
                self._ost_synced.set()

        await self.dm.mirror(lambda: self._meta("wal_sequence"), store, "runservice")

    async def _apply_batch(self, batch: FeedBatch) -> None:
        async with self.db.write() as db:
            if batch.reset:
                await db.execute("DELETE FROM run_ost")
                await db.execute("DELETE FROM runcounter_ost")
                await db.execute("DELETE FROM changegroup_ost")
            await self._apply_actions(db, batch.actions)
            if batch.change_groups_reset:
                await db.execute("DELETE FROM changegroup_ost")
            for name, rev in batch.change_groups.items():
                if rev == 0:
                    await db.execute("DELETE FROM changegroup_ost WHERE name = ?", (name,))
                else:
                    await db.execute(
                        "INSERT OR REPLACE INTO changegroup_ost (name, revision) VALUES (?, ?)", (name, rev)
                    )
            await db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [("wal_sequence", batch.wal_sequence), ("revision", str(batch.revision))],
            )

    @staticmethod
    async def _apply_actions(db: aiosqlite.Connection, actions: list[Any]) -> None:
        """Apply in order (in the caller's write transaction ``db``); consecutive puts go in one
        ``executemany`` (snapshots are all puts)."""
        runs: list[tuple[str, str, str, str, str]] = []
        counters: list[tuple[str, int]] = []

        async def flush() -> None:
            if runs:
                await db.executemany("INSERT OR REPLACE INTO run_ost VALUES (?, ?, ?, ?, ?)", runs)
                runs.clear()
            if counters:
                await db.executemany("INSERT OR REPLACE INTO runcounter_ost VALUES (?, ?)", counters)
                counters.clear()

        for action in actions:
            put = action.action_type is ActionType.PUT
            if action.data_type == DT_RUN:
                if put:
                    runs.append(_row(action.data))
                else:
                    await flush()
                    await db.execute("DELETE FROM run_ost WHERE id = ?", (action.id,))
            elif action.data_type == DT_RUNCOUNTER:
                if put:
                    counters.append((action.id, int(json.loads(action.data))))
                else:
                    await flush()
                    await db.execute("DELETE FROM runcounter_ost WHERE groupid = ?", (action.id,))
        await flush()

    # --- coordination mirror ------------------------------------------------------------------

    async def _follow_active(self) -> None:
        delay = 0.05
        while True:
            try:
                revision = await self._load_active()
                self._active_synced.set()
                delay = 0.05
                async with self.coord.watch(RUNS_PREFIX, start_revision=revision + 1) as watcher:
                    async for ev in watcher:
                        await self._apply_events([ev])
            except asyncio.CancelledError:
                raise
            except Compacted:
                log.info("runservice readdb: active runs watch compacted, reloading")
            except Exception as exc:  # noqa: BLE001 - the mirror outlives outages
                log.warning("runservice readdb: active runs mirror failed", error=repr(exc))
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)

    async def _load_active(self) -> int:
        rr = await self.coord.range(RUNS_PREFIX)
        async with self.db.write() as db:
            await db.execute("DELETE FROM run_active")
            await db.executemany(
                "INSERT OR REPLACE INTO run_active VALUES (?, ?, ?, ?, ?)", [_row(kv.value) for kv in rr.kvs]
            )
        self.active_revision = rr.revision
        await self._notify()
        return rr.revision

    async def _apply_events(self, events: Iterable[Event]) -> None:
        async with self.db.write() as db:
            for ev in events:
                if ev.type == "put":
                    await db.execute("INSERT OR REPLACE INTO run_active VALUES (?, ?, ?, ?, ?)", _row(ev.kv.value))
                else:
                    run_id = ev.kv.key[len(RUNS_PREFIX) :]
                    # The last stored value is the archived run: keep listing it from run_ost
                    # until the datamanager feed delivers the same run.
                    await db.execute(
                        "INSERT OR IGNORE INTO run_ost SELECT * FROM run_active WHERE id = ?", (run_id,)
                    )
                    await db.execute("DELETE FROM run_active WHERE id = ?", (run_id,))
                self.active_revision = max(self.active_revision, ev.revision)
        await self._notify()

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def wait_revision(self, revision: int, timeout: float = REVISION_WAIT) -> bool:
        """Wait until the active runs mirror has applied coordination ``revision`` (a caller that
        saw a run event of that revision then lists what it announced); False after ``timeout``."""
        if self.active_revision >= revision:
            return True
        try:
            async with asyncio.timeout(timeout):
                async with self.changed:
                    await self.changed.wait_for(lambda: self.active_revision >= revision)
        except TimeoutError:
            return False
        return True

    # --- queries ------------------------------------------------------------------------------

    async def run_counter(self, root_id: str) -> int:
        row = await self.db.fetchone("SELECT counter FROM runcounter_ost WHERE groupid = ?", (root_id,))
        return int(row[0]) if row else 0

    async def list_runs(self, q: RunsQuery) -> list[str]:
        """Run JSON texts matching ``q``, ordered by id (descending unless ``asc``)."""
        await self.wait_ready()
        limit = min(q.limit or DEFAULT_LIMIT, MAX_LIMIT)
        include_ost = not q.phases or bool(set(q.phases) & _ARCHIVED_PHASES)
        tables = ["run_active", "run_ost"] if include_ost else ["run_active"]
        async with self.db.read() as db:  # one snapshot: a run moving between tables is seen once
            if q.last_run:
                return await self._last_runs(db, q, tables, limit)
            found: dict[str, str] = {}
            order = "ASC" if q.asc else "DESC"
            for table in tables:
                if q.groups:
                    # A group is a prefix of run group paths: walk the (grouppath, id) index once
                    # per path under it, in id order, instead of sorting every run of the group
                    # (100k runs: a sort of all of them for a page of 25).
                    paths = await self._paths_under(db, table, q.groups)
                    queries = [self._where(q, with_cursor=True, path=path) for path in paths]
                else:
                    queries = [self._where(q, with_cursor=True)]
                for where, args in queries:
                    sql = f"SELECT id, data FROM {table} {where} ORDER BY id {order} LIMIT ?"
                    for run_id, data in await db.execute_fetchall(sql, (*args, limit)):
                        found.setdefault(run_id, data)  # active first: it is the freshest
        ids = sorted(found, reverse=not q.asc)[:limit]
        return [found[i] for i in ids]

    @staticmethod
    async def _paths_under(db: aiosqlite.Connection, table: str, groups: tuple[str, ...]) -> list[str]:
        """The distinct group paths of ``table`` under ``groups``: one index seek per path."""
        paths: list[str] = []
        for group in groups:
            cur, end, op = _group_path(group), _group_path(group) + "\uffff", ">="
            while True:
                rows = list(await db.execute_fetchall(
                    f"SELECT grouppath FROM {table} WHERE grouppath {op} ? AND grouppath < ? ORDER BY grouppath LIMIT 1",
                    (cur, end)))
                if not rows:
                    break
                paths.append(rows[0][0])
                cur, op = rows[0][0], ">"  # the next path after this one
        return sorted(set(paths))

    def _where(self, q: RunsQuery, *, with_cursor: bool, path: str | None = None) -> tuple[str, list[Any]]:
        """The WHERE clause of ``q``; ``path``: one run group path, instead of ``q``'s groups."""
        clauses: list[str] = []
        args: list[Any] = []
        if q.phases:
            clauses.append(f"phase IN ({','.join('?' * len(q.phases))})")
            args.extend(q.phases)
        if q.results:
            clauses.append(f"result IN ({','.join('?' * len(q.results))})")
            args.extend(q.results)
        if path is not None:
            clauses.append("grouppath = ?")
            args.append(path)
        elif q.groups:
            ors = []
            for group in q.groups:
                prefix = _group_path(group)
                # Prefix range: every path starting with ``prefix`` sorts in [prefix, prefix+\uffff).
                ors.append("(grouppath >= ? AND grouppath < ?)")
                args.extend([prefix, prefix + "\uffff"])
            clauses.append("(" + " OR ".join(ors) + ")")
        if with_cursor and q.start:
            clauses.append("id > ?" if q.asc else "id < ?")
            args.append(q.start)
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", args

    async def _last_runs(self, db: aiosqlite.Connection, q: RunsQuery, tables: list[str], limit: int) -> list[str]:
        # The newest run of every group path (across both tables), then filter and paginate.
        latest: dict[str, str] = {}
        base = attrs.evolve(q, phases=(), results=())
        for table in tables:
            where, args = self._where(base, with_cursor=False)
            sql = f"SELECT grouppath, max(id) FROM {table} {where} GROUP BY grouppath"
            for group, run_id in await db.execute_fetchall(sql, args):
                if run_id > latest.get(group, ""):
                    latest[group] = run_id
        ids = sorted(latest.values(), reverse=not q.asc)
        if q.start:
            ids = [i for i in ids if (i > q.start if q.asc else i < q.start)]
        out: list[str] = []
        for run_id in ids:
            data = await self._run_data(db, run_id, tables)
            if data is None:
                continue
            doc = json.loads(data)
            if q.phases and doc.get("phase") not in q.phases:
                continue
            if q.results and doc.get("result") not in q.results:
                continue
            out.append(data)
            if len(out) >= limit:
                break
        return out

    @staticmethod
    async def _run_data(db: aiosqlite.Connection, run_id: str, tables: list[str]) -> str | None:
        for table in tables:
            rows = list(await db.execute_fetchall(f"SELECT data FROM {table} WHERE id = ?", (run_id,)))
            if rows:
                return str(rows[0][0])
        return None
