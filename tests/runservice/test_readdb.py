"""The runservice readdb's sqlite file: versioned by ``agola.storage.readdb`` (its first migration is
the schema of the files written before versioning, so such a file migrates and keeps its data)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, cast

from agola.services.runservice.readdb import MIGRATIONS, RunReadDB

# What a runservice wrote before its readdb had schema versions (user_version 0).
LEGACY_SCHEMA = MIGRATIONS[0]


def _readdb(path: Path) -> RunReadDB:
    # Opening the file needs neither coordination nor the datamanager (only start() follows them).
    return RunReadDB(path, coord=cast(Any, None), dm=cast(Any, None))


def _legacy_file(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.executescript(LEGACY_SCHEMA)
        conn.execute("INSERT INTO meta (key, value) VALUES ('wal_sequence', 'seq-1')")
        conn.execute("INSERT INTO runcounter_ost (groupid, counter) VALUES ('g1', 7)")
        conn.commit()
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    finally:
        conn.close()


async def test_a_file_from_before_schema_versions_migrates_with_its_data(tmp_path: Path) -> None:
    path = tmp_path / "readdb" / "db"
    path.parent.mkdir()
    _legacy_file(path)
    rdb = _readdb(path)
    await rdb.open()
    try:
        assert await rdb.db.schema_version() == len(MIGRATIONS)
        assert await rdb.run_counter("g1") == 7
        row = await rdb.db.fetchone("SELECT value FROM meta WHERE key = 'wal_sequence'")
        assert row is not None and row[0] == "seq-1"
    finally:
        await rdb.stop()


async def test_a_new_file_gets_the_current_schema(tmp_path: Path) -> None:
    rdb = _readdb(tmp_path / "db")
    await rdb.open()
    try:
        assert await rdb.db.schema_version() == len(MIGRATIONS)
        assert await rdb.run_counter("nothing") == 0
    finally:
        await rdb.stop()
