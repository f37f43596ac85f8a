"""What only the embedded store does: persistence, one process per directory, history compaction."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agola.errors import BadRequest, Unavailable
from agola.storage.coord.base import Compacted
from agola.storage.coord.damage import CorruptStore
from agola.storage.coord.embedded import EmbeddedCoordination

REPO = Path(__file__).resolve().parents[3]


def _open_in_subprocess(data_dir: Path) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(
        f"""
        import asyncio
        from agola.storage.coord.embedded import EmbeddedCoordination
        async def main():
            c = await EmbeddedCoordination.open({str(data_dir)!r}, "p/")
            await c.put("from-child", b"x")
            await c.close()
        asyncio.run(main())
        """
    )
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)


async def test_a_second_process_is_refused(tmp_path: Path) -> None:
    coord = await EmbeddedCoordination.open(tmp_path, "p/")
    try:
        proc = await asyncio.to_thread(_open_in_subprocess, tmp_path)
        assert proc.returncode != 0
        assert "already in use by another process" in proc.stderr and str(tmp_path) in proc.stderr
        assert await coord.get("from-child") is None
    finally:
        await coord.close()
    # Once this process lets go, another one may open it.
    proc = await asyncio.to_thread(_open_in_subprocess, tmp_path)
    assert proc.returncode == 0, proc.stderr
    coord = await EmbeddedCoordination.open(tmp_path, "p/")
    assert await coord.get("from-child") is not None
    await coord.close()


async def test_state_history_and_leases_survive_a_reopen(tmp_path: Path) -> None:
    coord = await EmbeddedCoordination.open(tmp_path, "p/")
    r1 = await coord.put("a", b"1")
    await coord.put("a", b"2")
    lease = await coord.grant_lease(1)
    await coord.put("leased", b"v", lease=lease.id)
    rev = await coord.revision()
    await coord.close()

    coord = await EmbeddedCoordination.open(tmp_path, "p/")
    try:
        assert await coord.revision() == rev
        a = await coord.get("a")
        assert a is not None and (a.value, a.version, a.create_revision) == (b"2", 2, r1)
        assert [kv.value for kv in (await coord.range("a", revision=r1)).kvs] == [b"1"]
        assert await coord.put("b", b"x") == rev + 1
        # Nobody keeps the old lease alive any more: it expires and takes its key along.
        async with coord.watch("leased", start_revision=rev) as watcher:
            events = []
            async for ev in watcher:
                events.append(ev)
                if ev.type == "delete":
                    break
        assert [e.type for e in events] == ["put", "delete"]
    finally:
        await coord.close()


@pytest.mark.parametrize("damage", ["random-header", "truncated"])
async def test_a_corrupt_store_stops_with_an_error_naming_it_and_is_left_alone(
        tmp_path: Path, damage: str) -> None:
    coord = await EmbeddedCoordination.open(tmp_path, "p/")
    for i in range(300):
        await coord.put(f"key{i}", os.urandom(200))
    await coord.close()
    db = tmp_path / "coord.db"
    good = db.read_bytes()
    bad = os.urandom(4096) + good[4096:] if damage == "random-header" else good[: len(good) // 2]
    db.write_bytes(bad)

    with pytest.raises(CorruptStore) as err:
        await EmbeddedCoordination.open(tmp_path, "p/")
    assert str(db) in str(err.value) and "is corrupt" in str(err.value)
    assert db.read_bytes() == bad  # not rebuilt, not replaced: the only copy stays for recovery
    # Restored from a backup, it opens again (the failed open let go of the directory).
    db.write_bytes(good)
    coord = await EmbeddedCoordination.open(tmp_path, "p/")
    assert (await coord.get("key299")) is not None
    await coord.close()


async def test_a_damaged_wal_file_is_refused_not_dropped(tmp_path: Path) -> None:
    """sqlite would drop a -wal file with a damaged header, and the writes in it, silently."""
    coord = await EmbeddedCoordination.open(tmp_path, "p/")
    await coord.put("kept", b"1")
    wal = tmp_path / "coord.db-wal"
    # Copy the store as a crash leaves it: the last writes only in the -wal file.
    snapshot = {name: (tmp_path / name).read_bytes() for name in ("coord.db", "coord.db-wal")}
    await coord.close()
    assert len(snapshot["coord.db-wal"]) > 32
    (tmp_path / "coord.db").write_bytes(snapshot["coord.db"])
    good = snapshot["coord.db-wal"]
    wal.write_bytes(good[:8] + os.urandom(24) + good[32:])
    with pytest.raises(CorruptStore) as err:
        await EmbeddedCoordination.open(tmp_path, "p/")
    assert str(wal) in str(err.value)
    wal.write_bytes(good)  # restored: it opens with every write
    coord = await EmbeddedCoordination.open(tmp_path, "p/")
    assert await coord.get("kept") is not None
    await coord.close()


async def test_handles_in_one_process_share_the_store(tmp_path: Path) -> None:
    a = await EmbeddedCoordination.open(tmp_path, "runservice/")
    b = await EmbeddedCoordination.open(tmp_path / ".." / tmp_path.name, "configstore/")
    try:
        ra = await a.put("k", b"a")
        rb = await b.put("k", b"b")
        assert rb == ra + 1  # one revision sequence
        assert [kv.value for kv in (await a.range("")).kvs] == [b"a"]
    finally:
        await a.close()
    assert await b.get("k") is not None  # closing one handle leaves the other working
    await b.close()


async def test_compacted_history_is_reported(tmp_path: Path) -> None:
    coord = await EmbeddedCoordination.open(tmp_path, "p/", history=10)
    try:
        first = await coord.put("k", b"0")
        await coord.put("stable", b"s")
        for i in range(1, 40):
            await coord.put("k", str(i).encode())
        with pytest.raises(Compacted):
            async for _ in coord.watch("", start_revision=first):
                pass
        with pytest.raises(Compacted):
            await coord.range("", revision=first)
        # Recent history is still there, and old unchanged keys are still visible at it.
        now = await coord.revision()
        at = await coord.range("", revision=now - 5)
        assert [(kv.key, kv.value) for kv in at.kvs] == [("k", b"34"), ("stable", b"s")]
        with pytest.raises(BadRequest):
            await coord.range("", revision=now + 1)
        await coord.compact(now)
        with pytest.raises(Compacted):
            await coord.range("", revision=now - 1)
    finally:
        await coord.close()


async def test_a_closed_store_is_unavailable(tmp_path: Path) -> None:
    coord = await EmbeddedCoordination.open(tmp_path, "p/")
    watcher = coord.watch("")
    await coord.close()
    with pytest.raises(Unavailable):
        await coord.put("k", b"v")
    with pytest.raises(Unavailable):
        async for _ in watcher:
            pass


async def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    """A writer killed mid-stream loses nothing it was told was written."""
    code = textwrap.dedent(
        f"""
        import asyncio, sys
        from agola.storage.coord.embedded import EmbeddedCoordination
        async def main():
            c = await EmbeddedCoordination.open({str(tmp_path)!r}, "p/")
            async def writer(w):
                i = 0
                while True:
                    rev = await c.put(f"k/{{w}}/{{i:06d}}", b"x" * 100)
                    print(w, i, rev, flush=True)
                    i += 1
            await asyncio.gather(*(writer(w) for w in range(8)))
        asyncio.run(main())
        """
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    acked: list[tuple[str, int]] = []
    while len(acked) < 2000:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line, (await proc.stderr.read()).decode() if proc.stderr else "writer exited"
        w, i, rev = line.split()
        acked.append((f"k/{w.decode()}/{int(i):06d}", int(rev)))
    proc.kill()
    await proc.wait()

    coord = await EmbeddedCoordination.open(tmp_path, "p/")
    try:
        stored = {kv.key: kv.mod_revision for kv in (await coord.range("k/")).kvs}
        assert all(stored.get(key) == rev for key, rev in acked)
        # Revisions are dense and the store continues after the last one.
        assert sorted(stored.values()) == list(range(1, len(stored) + 1))
        assert await coord.put("after", b"x") == len(stored) + 1
    finally:
        await coord.close()
