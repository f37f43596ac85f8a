"""SIGKILL in the middle of writes and of checkpoints loses no acknowledged write."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from agola.storage.coord.embedded import EmbeddedCoordination
from agola.storage.datamanager import DataManager
from agola.storage.objectstorage.posix import PosixObjectStorage
from tests.storage.datamanager.conftest import DATATYPES, FAST
from tests.storage.datamanager.crash_worker import payload
from tests.storage.datamanager.mirror import Mirror
from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[3]


async def run_and_kill(base: Path, mode: str, acks_before_kill: int) -> list[str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.storage.datamanager.crash_worker",
        str(base),
        mode,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    acked: list[str] = []
    checkpoints = 0
    try:
        async with asyncio.timeout(60):
            while len(acked) < acks_before_kill or (mode == "checkpoint" and checkpoints < 3):
                line = (await proc.stdout.readline()).decode().strip()
                if not line:
                    raise AssertionError(f"worker exited early with {await proc.wait()}")
                if line.startswith("ack "):
                    acked.append(line[4:])
                elif line == "checkpointing":
                    checkpoints += 1
                    if checkpoints >= 3 and len(acked) >= acks_before_kill:
                        break  # kill while this checkpoint runs
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
    # Writes acknowledged in the pipe buffer but not read yet also count.
    rest = (await proc.stdout.read()).decode().split()
    acked += [rest[i + 1] for i, w in enumerate(rest) if w == "ack" and i + 1 < len(rest)]
    return acked


@pytest.mark.parametrize("mode", ["write", "checkpoint"])
async def test_no_acknowledged_write_is_lost(tmp_path: Path, mode: str) -> None:
    acked = await run_and_kill(tmp_path, mode, acks_before_kill=40)
    coord = await EmbeddedCoordination.open(tmp_path / "coord", "svc/")
    ost = PosixObjectStorage(tmp_path / "ost")
    dm = DataManager(coord, ost, "configdata", DATATYPES, FAST)
    try:
        await dm.init()
        ids = {e.id for e in await dm.list_objects("user")}
        missing = [a for a in acked if f"{a}-4" not in ids]
        assert not missing, f"acknowledged writes lost: {missing[:5]}"
        for a in acked[-3:]:
            assert await dm.read_object("user", f"{a}-0") == payload(int(a[1:]))
        # The restarted process keeps working: loops fold everything, a readdb rebuilds.
        await dm.start()
        await dm.force_checkpoint()
        mirror = Mirror()
        mirror.start(dm)
        await wait_for(lambda: mirror.synced and len(mirror.of("user")) == len(ids), timeout=30)
        await mirror.stop()
        assert set(mirror.of("user")) == ids
    finally:
        await dm.stop()
        await coord.close()
        await ost.close()
