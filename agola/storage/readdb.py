"""A small sqlite toolkit for the readdbs (configstore, runservice): one writer, many readers.

Usage::

    db = await ReadDB.open(path, MIGRATIONS)
    async with db.write() as tx:                 # BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error)
        await tx.execute("INSERT INTO run (id, data) VALUES (?, ?)", (run_id, blob))
    rows = await db.fetchall("SELECT id FROM run WHERE phase = ?", ("running",))
    async with db.read() as conn:                # one consistent snapshot for several queries
        ...
    await db.close()

- WAL mode, ``synchronous=NORMAL`` (durable at checkpoints, never corrupt), ``busy_timeout``.
- Schema versioning with ``PRAGMA user_version``: ``migrations[i]`` takes the schema from version
  ``i`` to ``i + 1``. Pending ones run in order in ONE transaction with the version bump, so a crash
  leaves the old schema or the new one. Migration scripts must not contain BEGIN/COMMIT.
- A readdb is a cache of the datamanager: a corrupt file (sqlite says "malformed" or "not a
  database", or ``PRAGMA quick_check`` finds damage) is moved aside as ``<name>.corrupt-<ts>``
  (with its ``-wal``/``-shm``), logged with its path, and an empty one opened instead: its owner
  then resyncs it from the datamanager as on a first start.
- One writer connection: writes are serialized by an asyncio lock, and the transaction is begun,
  committed or rolled back here, in one place. Readers use a pool of read-only connections (a
  read-only URI, so a reader can never write), which WAL lets run while a write is in progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from agola.errors import Internal, Unavailable
from agola.util.log import get_logger

log = get_logger(__name__)

Params = Sequence[Any] | dict[str, Any]

DEFAULT_READERS = 4
DEFAULT_BUSY_TIMEOUT_MS = 5000
# sqlite's primary result codes for a damaged file.
_CORRUPT_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}


class CorruptReadDB(Exception):
    """sqlite found the readdb file damaged."""


def _is_corrupt(exc: BaseException) -> bool:
    if isinstance(exc, CorruptReadDB):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.DatabaseError) and code is not None and (code & 0xFF) in _CORRUPT_CODES


def move_aside(db_path: Path) -> Path:
    """Rename a damaged database and its ``-wal``/``-shm`` to ``<name>.corrupt-<ts>[...]``."""
    aside = db_path.with_name(f"{db_path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    for suffix in ("", "-wal", "-shm"):
        src = db_path.with_name(db_path.name + suffix)
        if src.exists():
            src.rename(aside.with_name(aside.name + suffix))
    return aside


async def _connect(target: str, *, uri: bool, busy_timeout_ms: int) -> aiosqlite.Connection:
    # isolation_level=None: no implicit transactions, we issue BEGIN/COMMIT ourselves.
    conn = await aiosqlite.connect(target, uri=uri, isolation_level=None)
    conn.row_factory = sqlite3.Row
    await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    return conn


class ReadDB:
    def __init__(
        self, path: Path, writer: aiosqlite.Connection, readers: list[aiosqlite.Connection]
    ) -> None:
        self.path = path
        self._writer = writer
        self._write_lock = asyncio.Lock()
        self._readers = readers
        self._idle: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        for conn in readers:
            self._idle.put_nowait(conn)
        self._closed = False

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        migrations: Sequence[str],
        *,
        readers: int = DEFAULT_READERS,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    ) -> ReadDB:
        db_path = Path(path).absolute()  # noqa: ASYNC240 - once, when the database is opened
        db_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return await cls._open(db_path, migrations, readers, busy_timeout_ms)
        except Exception as exc:
            if not _is_corrupt(exc):
                raise
            aside = move_aside(db_path)
            log.error("readdb file corrupt: moved aside, rebuilding it from the datamanager",
                      path=str(db_path), moved_to=str(aside), error=str(exc))
        return await cls._open(db_path, migrations, readers, busy_timeout_ms)

    @classmethod
    async def _open(cls, db_path: Path, migrations: Sequence[str], readers: int,
                    busy_timeout_ms: int) -> ReadDB:
        writer = await _connect(str(db_path), uri=False, busy_timeout_ms=busy_timeout_ms)
        reader_conns: list[aiosqlite.Connection] = []
        try:
            mode = next(iter(await writer.execute_fetchall("PRAGMA journal_mode = WAL")))[0]
            if str(mode).lower() != "wal":
                raise Internal(f"readdb {db_path}: cannot enable WAL mode (got {mode})")
            await writer.execute("PRAGMA synchronous = NORMAL")
            await writer.execute("PRAGMA foreign_keys = ON")
            problems = [str(r[0]) for r in await writer.execute_fetchall("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise CorruptReadDB(f"quick_check: {'; '.join(problems[:3])}")
            await _migrate(writer, db_path, migrations)
            ro_uri = db_path.as_uri() + "?mode=ro"
            for _ in range(max(1, readers)):
                reader_conns.append(await _connect(ro_uri, uri=True, busy_timeout_ms=busy_timeout_ms))
        except BaseException:
            for conn in [writer, *reader_conns]:
                await conn.close()
            raise
        return cls(db_path, writer, reader_conns)

    async def schema_version(self) -> int:
        row = await self.fetchone("PRAGMA user_version")
        assert row is not None
        return int(row[0])

    # -- writing -------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        self._check_open()
        async with self._write_lock:
            tx = self._writer
            if tx.in_transaction:
                # A previous rollback was itself interrupted (double cancellation): clean up.
                await tx.execute("ROLLBACK")
            await tx.execute("BEGIN IMMEDIATE")
            try:
                yield tx
            except BaseException:
                await tx.execute("ROLLBACK")
                raise
            await tx.execute("COMMIT")

    # -- reading -------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def read(self, *, snapshot: bool = True) -> AsyncIterator[aiosqlite.Connection]:
        """A read-only connection; with ``snapshot`` every query in the block sees the same data."""
        self._check_open()
        conn = await self._idle.get()
        try:
            if conn.in_transaction:
                await conn.execute("COMMIT")  # left open by a cancelled block
            if snapshot:
                await conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    await conn.execute("COMMIT")
        finally:
            self._idle.put_nowait(conn)

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        async with self.read(snapshot=False) as conn:
            return list(await conn.execute_fetchall(sql, params))

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        async with self.read(snapshot=False) as conn:
            async with conn.execute(sql, params) as cursor:
                row: sqlite3.Row | None = await cursor.fetchone()
                return row

    # -- closing -------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable(f"readdb {self.path} is closed")

    async def close(self) -> None:
        """Wait for in-flight reads and writes, then close every connection."""
        if self._closed:
            return
        self._closed = True
        for _ in self._readers:
            conn = await self._idle.get()
            await conn.close()
        async with self._write_lock:
            await self._writer.close()


async def _migrate(writer: aiosqlite.Connection, path: Path, migrations: Sequence[str]) -> None:
    # BEGIN IMMEDIATE first: two processes opening the same db must not both migrate.
    await writer.execute("BEGIN IMMEDIATE")
    try:
        current = int(next(iter(await writer.execute_fetchall("PRAGMA user_version")))[0])
        target = len(migrations)
        if current > target:
            raise Internal(
                f"readdb {path}: schema version {current} is newer than this program knows ({target})"
            )
        for version in range(current, target):
            for statement in _statements(migrations[version]):
                try:
                    await writer.execute(statement)
                except sqlite3.Error as exc:
                    raise Internal(f"readdb {path}: migration {version + 1} failed: {exc}") from exc
        if target != current:
            await writer.execute(f"PRAGMA user_version = {target}")
            log.info("readdb migrated", path=str(path), from_version=current, to_version=target)
    except BaseException:
        await writer.execute("ROLLBACK")
        raise
    await writer.execute("COMMIT")


def _statements(script: str) -> Iterable[str]:
    """Split a script into complete statements (``;`` inside strings or triggers is handled).

    ``executescript`` is not an option: it COMMITs first, breaking the one-transaction migration.
    """
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\r\n;"):
                yield pending.strip()
            pending = ""
    if pending.strip(" \t\r\n;"):
        raise Internal(f"readdb migration: incomplete statement {pending.strip()[:80]!r}")
