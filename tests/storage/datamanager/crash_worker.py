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


async def main(base: Path, mode: str) -> None:
    coord = await EmbeddedCoordination.open(base / "coord", "svc/")
    ost = PosixObjectStorage(base / "ost")
    dm = DataManager(coord, ost, "configdata", DATATYPES, attrs.evolve(FAST, max_data_file_size=4096))
    await dm.init()
    await dm.start()
    payload = b"x" * 300
    i = 0
    while True:
        batch = [Action.put("user", f"w{i:06d}-{j}", payload) for j in range(5)]
        await dm.write_wal(batch)
        print(f"ack w{i:06d}", flush=True)
        i += 1
        if mode == "checkpoint" and i % 5 == 0:
            print("checkpointing", flush=True)
            await dm.force_checkpoint()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
