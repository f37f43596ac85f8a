"""What only the posix backend promises: its on-disk layout, staging and durability knobs."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agola.errors import BadRequest, NotExist
from agola.storage.objectstorage.posix import PosixObjectStorage
from tests.support.waiting import wait_for


async def test_objects_live_under_data_and_staging_is_cleaned(tmp_path: Path) -> None:
    ost = PosixObjectStorage(tmp_path)
    await ost.write("logs/t1/data/steps/0.log", b"step output")

    assert (tmp_path / "data" / "logs" / "t1" / "data" / "steps" / "0.log").read_bytes() == b"step output"
    assert list((tmp_path / "tmp").iterdir()) == []


async def test_failed_write_leaves_no_temp_file(tmp_path: Path) -> None:
    ost = PosixObjectStorage(tmp_path)

    async def broken() -> AsyncIterator[bytes]:
        yield b"partial"
        raise OSError("disk unplugged")

    with pytest.raises(OSError):
        await ost.write("x", broken())
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not (tmp_path / "data" / "x").exists()


async def test_cancelled_write_leaves_no_temp_file(tmp_path: Path) -> None:
    ost = PosixObjectStorage(tmp_path)
    started = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        while True:
            started.set()
            yield b"x" * 4096
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ost.write("x", endless()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list((tmp_path / "tmp").iterdir()) == []
    with pytest.raises(NotExist):
        await ost.stat("x")


async def test_delete_prunes_empty_parents_but_not_data_dir(tmp_path: Path) -> None:
    ost = PosixObjectStorage(tmp_path)
    await ost.write("a/b/c/obj", b"1")
    await ost.write("a/keep", b"2")
    await ost.delete("a/b/c/obj")

    assert not (tmp_path / "data" / "a" / "b").exists()
    assert (tmp_path / "data" / "a" / "keep").exists()
    await ost.delete("a/keep")
    assert (tmp_path / "data").is_dir()
    assert list((tmp_path / "data").iterdir()) == []


async def test_object_cannot_also_be_a_directory(tmp_path: Path) -> None:
    ost = PosixObjectStorage(tmp_path)
    await ost.write("a/b", b"1")
    with pytest.raises(BadRequest):
        await ost.write("a", b"2")
    with pytest.raises(BadRequest):
        await ost.write("a/b/c", b"3")
    assert await ost.read_all("a/b") == b"1"
    assert list((tmp_path / "tmp").iterdir()) == []


async def test_empty_leftover_directories_are_not_listed(tmp_path: Path) -> None:
    ost = PosixObjectStorage(tmp_path)
    (tmp_path / "data" / "crashed" / "deep").mkdir(parents=True)
    await ost.write("real/x", b"")
    assert [i.path async for i in ost.list("", recursive=False)] == ["real/"]


@pytest.mark.parametrize("fsync", [True, False])
async def test_data_survives_reopen(tmp_path: Path, fsync: bool) -> None:
    ost = PosixObjectStorage(tmp_path, fsync=fsync)
    await ost.write("a", b"durable", persist=True)
    await ost.write("b", b"fast", persist=False)
    reopened = PosixObjectStorage(tmp_path, fsync=fsync)
    assert await reopened.read_all("a") == b"durable"
    assert await reopened.read_all("b") == b"fast"


async def test_reader_of_replaced_object_keeps_old_content(tmp_path: Path) -> None:
    ost = PosixObjectStorage(tmp_path)
    await ost.write("obj", b"old" * 1000)
    reader = await ost.read("obj")
    await ost.write("obj", b"new")
    await ost.delete("obj")
    async with reader:
        assert await reader.read() == b"old" * 1000


async def test_overlong_file_name_is_a_bad_request(tmp_path: Path) -> None:
    ost = PosixObjectStorage(tmp_path)
    with pytest.raises(BadRequest):
        await ost.write("d/" + "x" * 256, b"")
    await ost.write("d/" + "x" * 255, b"ok")
    assert await ost.read_all("d/" + "x" * 255) == b"ok"


@pytest.mark.parametrize("fsync", [False, True])
async def test_writes_racing_deletes_that_prune_the_same_directory(tmp_path: Path, fsync: bool) -> None:
    ost = PosixObjectStorage(tmp_path, fsync=fsync)

    async def churn(name: str) -> None:
        for _ in range(100 if not fsync else 20):
            await ost.write(f"shared/dir/{name}", b"x")
            await ost.delete(f"shared/dir/{name}")

    await asyncio.gather(*(churn(f"o{i}") for i in range(4)))
    assert [i async for i in ost.list("")] == []
    assert list((tmp_path / "tmp").iterdir()) == []


def _open_fds_on(path: Path) -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                count += 1
        except OSError:
            pass
    return count


async def test_reader_cancelled_mid_read_still_closes_its_file(tmp_path: Path) -> None:
    ost = PosixObjectStorage(tmp_path)
    await ost.write("big", b"x" * (8 * 1024 * 1024))
    file = tmp_path / "data" / "big"
    reader = await ost.read("big")
    got_one = asyncio.Event()

    async def consume() -> None:
        async for _chunk in reader:
            got_one.set()
            await asyncio.sleep(0)

    task = asyncio.create_task(consume())
    await got_one.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await reader.aclose()
    await wait_for(lambda: _open_fds_on(file) == 0, timeout=10, message="reader file closed")
