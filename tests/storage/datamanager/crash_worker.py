"""A datamanager writer to be killed with SIGKILL by ``test_crash.py``.

Usage: ``python -m tests.storage.datamanager.crash_worker <dir> <mode>``. Prints ``ack <id>`` after
each acknowledged write (flushed), and ``checkpointing`` before each checkpoint in mode
``checkpoint``. Background loops run with short intervals in both modes.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import attrs

from agola.storage.coord.embedded import EmbeddedCoordination
from agola.storage.datamanager import Action, DataManager
from agola.storage.objectstorage.posix import PosixObjectStorage
from tests.storage.datamanager.conftest import DATATYPES, FAST


def payload(i: int) -> bytes:
    """Odd writes are small (committed inline in coordination), even ones go to storage first."""
    return b"x" * (10 if i % 2 else 300)


async def main(base: Path, mode: str) -> None:
    coord = await EmbeddedCoordination.open(base / "coord", "svc/")
    ost = PosixObjectStorage(base / "ost")
    options = attrs.evolve(FAST, max_data_file_size=4096, inline_wal_max_bytes=1000)
    dm = DataManager(coord, ost, "configdata", DATATYPES, options)
    await dm.init()
    await dm.start()
    i = 0
    while True:
        batch = [Action.put("user", f"w{i:06d}-{j}", payload(i)) for j in range(5)]
        await dm.write_wal(batch)
        print(f"ack w{i:06d}", flush=True)
        i += 1
        if mode == "checkpoint" and i % 5 == 0:
            print("checkpointing", flush=True)
            await dm.force_checkpoint()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
