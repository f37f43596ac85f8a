"""ReadDB: migrations, one writer with many readers, transactions that commit or roll back once."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest

from agola.errors import Internal, Unavailable
from agola.storage.readdb import ReadDB
from tests.support.logs import logged

V1 = """
CREATE TABLE run (id TEXT PRIMARY KEY, phase TEXT NOT NULL);
CREATE INDEX run_phase ON run (phase);
"""
V2 = """
-- a column with a default holding a ';' must not confuse the statement splitter
ALTER TABLE run ADD COLUMN note TEXT NOT NULL DEFAULT 'a;b';
CREATE TABLE counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TRIGGER run_count AFTER INSERT ON run BEGIN
    INSERT INTO counter (name, value) VALUES ('runs', 1)
        ON CONFLICT (name) DO UPDATE SET value = value + 1;
END;
"""


async def test_open_applies_migrations_in_order(tmp_path: Path) -> None:
    db = await ReadDB.open(tmp_path / "readdb" / "db", [V1, V2])
    assert await db.schema_version() == 2
    async with db.write() as tx:
        await tx.execute("INSERT INTO run (id, phase) VALUES (?, ?)", ("r1", "queued"))
    row = await db.fetchone("SELECT id, phase, note FROM run")
    assert row is not None and dict(row) == {"id": "r1", "phase": "queued", "note": "a;b"}
    assert (await db.fetchone("SELECT value FROM counter WHERE name = 'runs'"))[0] == 1  # type: ignore[index]
    mode = await db.fetchone("PRAGMA journal_mode")
    assert mode is not None and mode[0] == "wal"
    await db.close()


async def test_reopen_keeps_data_and_runs_only_new_migrations(tmp_path: Path) -> None:
    path = tmp_path / "db"
    db = await ReadDB.open(path, [V1])
    async with db.write() as tx:
        await tx.execute("INSERT INTO run (id, phase) VALUES ('r1', 'running')")
    await db.close()

    db = await ReadDB.open(path, [V1, V2])  # V1 must not run again (it would fail: table exists)
    assert await db.schema_version() == 2
    rows = await db.fetchall("SELECT id, phase, note FROM run")
    assert [tuple(r) for r in rows] == [("r1", "running", "a;b")]
    await db.close()

    db = await ReadDB.open(path, [V1, V2])
    assert len(await db.fetchall("SELECT * FROM run")) == 1
    await db.close()


async def test_failed_migration_leaves_previous_schema(tmp_path: Path) -> None:
    path = tmp_path / "db"
    db = await ReadDB.open(path, [V1])
    await db.close()

    broken = "CREATE TABLE half_done (x INTEGER); INSERT INTO no_such_table VALUES (1);"
    with pytest.raises(Internal, match="migration 2"):
        await ReadDB.open(path, [V1, broken])

    db = await ReadDB.open(path, [V1])
    assert await db.schema_version() == 1
    assert await db.fetchall("SELECT name FROM sqlite_master WHERE name = 'half_done'") == []
    await db.close()


async def test_newer_schema_than_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db"
    await (await ReadDB.open(path, [V1, V2])).close()
    with pytest.raises(Internal, match="newer"):
        await ReadDB.open(path, [V1])


async def test_exception_in_write_block_rolls_back(tmp_path: Path) -> None:
    db = await ReadDB.open(tmp_path / "db", [V1])
    with pytest.raises(RuntimeError):
        async with db.write() as tx:
            await tx.execute("INSERT INTO run (id, phase) VALUES ('r1', 'queued')")
            raise RuntimeError("business rule failed halfway")
    assert await db.fetchall("SELECT * FROM run") == []

    # A constraint violation rolls back the whole block, earlier statements included.
    with pytest.raises(sqlite3.IntegrityError):
        async with db.write() as tx:
            await tx.execute("INSERT INTO run (id, phase) VALUES ('r2', 'queued')")
            await tx.execute("INSERT INTO run (id, phase) VALUES ('r2', 'again')")
    assert await db.fetchall("SELECT * FROM run") == []

    # The writer is usable afterwards.
    async with db.write() as tx:
        await tx.execute("INSERT INTO run (id, phase) VALUES ('r3', 'queued')")
    assert [r["id"] for r in await db.fetchall("SELECT id FROM run")] == ["r3"]
    await db.close()


async def test_cancelled_write_rolls_back_and_frees_the_writer(tmp_path: Path) -> None:
    db = await ReadDB.open(tmp_path / "db", [V1])
    inside = asyncio.Event()

    async def slow_write() -> None:
        async with db.write() as tx:
            await tx.execute("INSERT INTO run (id, phase) VALUES ('r1', 'queued')")
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(slow_write())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with db.write() as tx:
        await tx.execute("INSERT INTO run (id, phase) VALUES ('r2', 'queued')")
    assert [r["id"] for r in await db.fetchall("SELECT id FROM run")] == ["r2"]
    await db.close()


async def test_writes_are_serialized(tmp_path: Path) -> None:
    db = await ReadDB.open(tmp_path / "db", [V1, V2])

    async def increment() -> None:
        # Read-modify-write: lost updates would show if two blocks interleaved.
        async with db.write() as tx:
            rows = list(await tx.execute_fetchall("SELECT value FROM counter WHERE name = 'n'"))
            value = rows[0][0] if rows else 0
            await asyncio.sleep(0)
            await tx.execute("INSERT OR REPLACE INTO counter (name, value) VALUES ('n', ?)", (value + 1,))

    await asyncio.gather(*(increment() for _ in range(50)))
    assert (await db.fetchone("SELECT value FROM counter WHERE name = 'n'"))[0] == 50  # type: ignore[index]
    await db.close()


async def test_readers_run_during_a_write_and_see_committed_data_only(tmp_path: Path) -> None:
    db = await ReadDB.open(tmp_path / "db", [V1], readers=3)
    async with db.write() as tx:
        await tx.execute("INSERT INTO run (id, phase) VALUES ('r0', 'done')")

    in_write = asyncio.Event()
    release = asyncio.Event()

    async def long_write() -> None:
        async with db.write() as tx:
            await tx.execute("INSERT INTO run (id, phase) VALUES ('r1', 'queued')")
            in_write.set()
            await release.wait()

    writer = asyncio.create_task(long_write())
    await in_write.wait()
    # Several readers at once, while the write transaction is open: not blocked, old data.
    results = await asyncio.wait_for(
        asyncio.gather(*(db.fetchall("SELECT id FROM run") for _ in range(6))), timeout=10
    )
    assert all([r["id"] for r in rows] == ["r0"] for rows in results)
    release.set()
    await writer
    assert [r["id"] for r in await db.fetchall("SELECT id FROM run ORDER BY id")] == ["r0", "r1"]
    await db.close()


async def test_read_block_is_one_snapshot(tmp_path: Path) -> None:
    db = await ReadDB.open(tmp_path / "db", [V1])
    async with db.write() as tx:
        await tx.execute("INSERT INTO run (id, phase) VALUES ('r0', 'done')")
    async with db.read() as conn:
        before = list(await conn.execute_fetchall("SELECT count(*) FROM run"))
        async with db.write() as tx:
            await tx.execute("INSERT INTO run (id, phase) VALUES ('r1', 'done')")
        after = list(await conn.execute_fetchall("SELECT count(*) FROM run"))
    assert before[0][0] == after[0][0] == 1
    assert (await db.fetchone("SELECT count(*) FROM run"))[0] == 2  # type: ignore[index]
    await db.close()


async def test_readers_cannot_write(tmp_path: Path) -> None:
    db = await ReadDB.open(tmp_path / "db", [V1])
    async with db.read() as conn:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await conn.execute("INSERT INTO run (id, phase) VALUES ('x', 'y')")
    await db.close()


async def test_concurrent_reads_and_writes_stress(tmp_path: Path) -> None:
    db = await ReadDB.open(tmp_path / "db", [V1], readers=2)
    stop = asyncio.Event()
    reads = 0

    async def writer() -> None:
        for i in range(200):
            async with db.write() as tx:
                await tx.execute("INSERT INTO run (id, phase) VALUES (?, 'queued')", (f"r{i:04d}",))
                await tx.execute("UPDATE run SET phase = 'done' WHERE id = ?", (f"r{i:04d}",))
        stop.set()

    async def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            # A write's two statements are never seen half-applied.
            rows = await db.fetchall("SELECT count(*) FROM run WHERE phase = 'queued'")
            assert rows[0][0] == 0
            reads += 1

    await asyncio.gather(writer(), *(reader() for _ in range(4)))
    assert reads > 0
    assert (await db.fetchone("SELECT count(*) FROM run"))[0] == 200  # type: ignore[index]
    await db.close()


async def test_closed_db_refuses_work(tmp_path: Path) -> None:
    db = await ReadDB.open(tmp_path / "db", [V1])
    await db.close()
    await db.close()  # idempotent
    with pytest.raises(Unavailable):
        await db.fetchall("SELECT 1")
    with pytest.raises(Unavailable):
        async with db.write():
            pass


REBUILD_LOG = "readdb file corrupt: moved aside, rebuilding it from the datamanager"


@pytest.mark.parametrize("damage", ["random-header", "truncated"])
async def test_a_corrupt_file_is_moved_aside_and_opened_empty(
        tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "readdb" / "db"
    db = await ReadDB.open(path, [V1])
    async with db.write() as tx:
        await tx.executemany("INSERT INTO run (id, phase) VALUES (?, ?)",
                             [(f"r{i}-" + "x" * 200, "queued") for i in range(2000)])
    await db.close()
    raw = path.read_bytes()
    assert len(raw) > 64 * 1024
    if damage == "random-header":
        path.write_bytes(os.urandom(4096) + raw[4096:])
    else:
        path.write_bytes(raw[: len(raw) // 2])

    db = await ReadDB.open(path, [V1])
    # Empty and usable: the owner resyncs it from the datamanager.
    assert await db.fetchall("SELECT id FROM run") == []
    async with db.write() as tx:
        await tx.execute("INSERT INTO run (id, phase) VALUES ('new', 'queued')")
    await db.close()
    [aside] = [p for p in path.parent.iterdir() if p.name.startswith("db.corrupt-") and "-wal" not in p.name
               and "-shm" not in p.name]
    assert aside.stat().st_size > 0
    [record] = logged(caplog, REBUILD_LOG)
    assert record.fields["path"] == str(path)  # type: ignore[attr-defined]
    assert record.fields["moved_to"] == str(aside)  # type: ignore[attr-defined]


async def test_a_locked_or_newer_file_is_not_taken_for_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "db"
    db = await ReadDB.open(path, [V1, V2])
    await db.close()
    with pytest.raises(Internal, match="newer than this program knows"):
        await ReadDB.open(path, [V1])
    assert [p.name for p in tmp_path.iterdir() if "corrupt" in p.name] == []
