"""The ObjectStorage contract, run against every backend (posix and S3 on moto)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from agola.errors import BadRequest, NotExist
from agola.storage.objectstorage.base import CHUNK_SIZE, ObjectStorage

OstFactory = Callable[[], Awaitable[ObjectStorage]]

MiB = 1024 * 1024


async def stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        await asyncio.sleep(0)
        yield chunk


async def paths(ost: ObjectStorage, prefix: str = "", **kw: object) -> list[str]:
    return [info.path async for info in ost.list(prefix, **kw)]  # type: ignore[arg-type]


# -- basic object life ------------------------------------------------------------------------


async def test_write_bytes_then_stat_and_read(ost: ObjectStorage) -> None:
    before = time.time()
    await ost.write("logs/t1/data/setup.log", b"hello world")

    info = await ost.stat("logs/t1/data/setup.log")
    assert info.path == "logs/t1/data/setup.log"
    assert info.size == 11
    assert not info.is_dir
    assert before - 5 <= info.last_modified <= time.time() + 5
    assert await ost.read_all("logs/t1/data/setup.log") == b"hello world"
    assert await ost.exists("logs/t1/data/setup.log")


async def test_write_stream_of_unknown_length(ost: ObjectStorage) -> None:
    # Tiny chunks, odd sizes and one chunk bigger than a read chunk.
    chunks = [b"a" * 3, b"", b"b" * 70_000, os.urandom(CHUNK_SIZE + 17), b"z"]
    await ost.write("caches/k.tar", stream(*chunks))

    expected = b"".join(chunks)
    assert (await ost.stat("caches/k.tar")).size == len(expected)
    reader = await ost.read("caches/k.tar")
    async with reader:
        got = [chunk async for chunk in reader]
    assert b"".join(got) == expected
    assert all(0 < len(chunk) <= CHUNK_SIZE for chunk in got)


async def test_write_stream_with_declared_size(ost: ObjectStorage) -> None:
    await ost.write("sized", stream(b"abc", b"def"), size=6)
    assert await ost.read_all("sized") == b"abcdef"


async def test_empty_objects(ost: ObjectStorage) -> None:
    await ost.write("runs/r1", b"")
    await ost.write("runs/r2", stream())
    for path in ("runs/r1", "runs/r2"):
        assert (await ost.stat(path)).size == 0
        assert await ost.read_all(path) == b""


async def test_overwrite_replaces_content(ost: ObjectStorage) -> None:
    await ost.write("obj", b"first version")
    await ost.write("obj", stream(b"second"))
    assert await ost.read_all("obj") == b"second"
    assert (await ost.stat("obj")).size == 6


async def test_unicode_and_spaces_in_names(ost: ObjectStorage) -> None:
    names = ["dir with space/ünïcode €.txt", "dir with space/a+b%20c&d=e?.log"]
    for name in names:
        await ost.write(name, name.encode())
        assert await ost.read_all(name) == name.encode()
    assert await paths(ost, "dir with space/") == sorted(names)
    assert await paths(ost, "", recursive=False) == ["dir with space/"]


async def test_objects_are_visible_to_another_instance(ost_factory: OstFactory) -> None:
    first = await ost_factory()
    await first.write("shared/a", b"from first")
    second = await ost_factory()
    assert await second.read_all("shared/a") == b"from first"


# -- missing objects --------------------------------------------------------------------------


async def test_missing_object_is_not_exist_everywhere(ost: ObjectStorage) -> None:
    await ost.write("present/a", b"x")
    for missing in ("absent", "present", "present/a/b", "present/b"):
        with pytest.raises(NotExist):
            await ost.stat(missing)
        with pytest.raises(NotExist):
            await ost.read(missing)
        with pytest.raises(NotExist):
            await ost.read_all(missing)
        with pytest.raises(NotExist):
            await ost.delete(missing)
        assert not await ost.exists(missing)


async def test_deleted_object_is_gone(ost: ObjectStorage) -> None:
    await ost.write("d/only", b"x")
    await ost.write("keep", b"y")
    await ost.delete("d/only")

    with pytest.raises(NotExist):
        await ost.stat("d/only")
    with pytest.raises(NotExist):
        await ost.delete("d/only")
    # No empty "directory" is left behind.
    assert await paths(ost, "", recursive=False) == ["keep"]
    assert await paths(ost) == ["keep"]


# -- invalid names ----------------------------------------------------------------------------

INVALID = ["", "/abs", "/", "..", "a/../b", "a/..", ".", "a/./b", "a//b", "a/", "a\\b", "a\x00b", "a/" * 512 + "b"]


@pytest.mark.parametrize("name", INVALID, ids=lambda n: repr(n)[:24])
async def test_invalid_names_are_bad_requests(ost: ObjectStorage, name: str) -> None:
    with pytest.raises(BadRequest):
        await ost.write(name, b"x")
    with pytest.raises(BadRequest):
        await ost.write(name, stream(b"x"))
    with pytest.raises(BadRequest):
        await ost.stat(name)
    with pytest.raises(BadRequest):
        await ost.read(name)
    with pytest.raises(BadRequest):
        await ost.delete(name)
    assert await paths(ost) == []


@pytest.mark.parametrize("prefix", ["/abs", "../", "a/../", "a\\b"])
async def test_invalid_list_prefix_is_bad_request(ost: ObjectStorage, prefix: str) -> None:
    with pytest.raises(BadRequest):
        await paths(ost, prefix)


# -- failed writes leave nothing behind -------------------------------------------------------


async def test_size_mismatch_is_rejected_and_keeps_old_object(ost: ObjectStorage) -> None:
    await ost.write("obj", b"old")
    with pytest.raises(BadRequest):
        await ost.write("obj", stream(b"abc", b"def"), size=5)
    with pytest.raises(BadRequest):
        await ost.write("obj", stream(b"abc"), size=4)
    with pytest.raises(BadRequest):
        await ost.write("obj", b"abc", size=4)
    assert await ost.read_all("obj") == b"old"


async def test_failing_stream_keeps_old_object(ost: ObjectStorage) -> None:
    await ost.write("obj", b"old")

    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * MiB
        raise RuntimeError("source went away")

    with pytest.raises(RuntimeError, match="source went away"):
        await ost.write("obj", broken())
    with pytest.raises(RuntimeError, match="source went away"):
        await ost.write("new", broken())
    assert await ost.read_all("obj") == b"old"
    assert await paths(ost) == ["obj"]


# -- listing ----------------------------------------------------------------------------------

LAYOUT = [
    "a/b/1",
    "a/b/2",
    "a/bc",
    "a/bd/1",
    "a/c",
    "a/x-1",
    "a/x/1",
    "a/x0",
    "b",
    "c/d/e/f",
]


@pytest.fixture
async def populated(ost: ObjectStorage) -> ObjectStorage:
    # Written out of order: listing order must not depend on write order.
    for i, path in enumerate(reversed(LAYOUT)):
        await ost.write(path, str(i).encode())
    return ost


async def test_list_recursive_is_lexical(populated: ObjectStorage) -> None:
    assert await paths(populated) == sorted(LAYOUT)
    infos = [info async for info in populated.list("")]
    assert all(not info.is_dir and info.size == 1 for info in infos)


async def test_list_prefix(populated: ObjectStorage) -> None:
    assert await paths(populated, "a/b/") == ["a/b/1", "a/b/2"]
    # A prefix is a string prefix, not a directory.
    assert await paths(populated, "a/b") == ["a/b/1", "a/b/2", "a/bc", "a/bd/1"]
    assert await paths(populated, "a/x") == ["a/x-1", "a/x/1", "a/x0"]
    assert await paths(populated, "c/") == ["c/d/e/f"]
    assert await paths(populated, "nothing/") == []
    assert await paths(populated, "b") == ["b"]


async def test_list_start_after_is_exclusive(populated: ObjectStorage) -> None:
    assert await paths(populated, start_after="a/x/1") == ["a/x0", "b", "c/d/e/f"]
    assert await paths(populated, start_after="a/b") == [p for p in sorted(LAYOUT) if p > "a/b"]
    assert await paths(populated, "a/", start_after="a/bd/1") == ["a/c", "a/x-1", "a/x/1", "a/x0"]
    # start_after need not name an existing object.
    assert await paths(populated, "a/", start_after="a/bz") == ["a/c", "a/x-1", "a/x/1", "a/x0"]
    assert await paths(populated, start_after="zzz") == []


async def test_list_non_recursive_reports_directories(populated: ObjectStorage) -> None:
    top = [info async for info in populated.list("", recursive=False)]
    assert [i.path for i in top] == ["a/", "b", "c/"]
    assert [i.is_dir for i in top] == [True, False, True]

    assert await paths(populated, "a/", recursive=False) == [
        "a/b/", "a/bc", "a/bd/", "a/c", "a/x-1", "a/x/", "a/x0",
    ]
    # A partial last segment filters entries of its directory.
    assert await paths(populated, "a/b", recursive=False) == ["a/b/", "a/bc", "a/bd/"]
    assert await paths(populated, "c/d/", recursive=False) == ["c/d/e/"]


async def test_list_non_recursive_start_after(populated: ObjectStorage) -> None:
    # Entries (objects and directories) strictly after start_after, in lexical order.
    assert await paths(populated, "a/", recursive=False, start_after="a/bc") == [
        "a/bd/", "a/c", "a/x-1", "a/x/", "a/x0",
    ]
    assert await paths(populated, "a/", recursive=False, start_after="a/x/") == ["a/x0"]
    assert await paths(populated, "a/", recursive=False, start_after="a/x/1") == ["a/x0"]
    assert await paths(populated, "", recursive=False, start_after="a/") == ["b", "c/"]


async def test_list_many_objects_in_order(ost: ObjectStorage) -> None:
    # More than one listing page (S3: 1000 entries) and batch (posix: 256 entries), with
    # sub-directories sorting between objects on every page ("many/00100" < "many/00100x/").
    names = [f"many/{i:05d}" for i in range(0, 1050)]
    nested = [f"many/{i:05d}x/y" for i in range(0, 1050, 100)]
    await asyncio.gather(*(ost.write(n, b"") for n in names + nested))

    assert await paths(ost, "many/") == sorted(names + nested)
    dirs = [n[: -len("y")] for n in nested]
    flat = [info async for info in ost.list("many/", recursive=False)]
    assert [i.path for i in flat] == sorted(names + dirs)
    assert {i.path for i in flat if i.is_dir} == set(dirs)
    assert await paths(ost, "many/", start_after="many/01000") == sorted(
        n for n in names + nested if n > "many/01000"
    )
    assert await paths(ost, "many/", recursive=False, start_after="many/00500") == sorted(
        n for n in names + dirs if n > "many/00500"
    )


# -- atomic overwrite -------------------------------------------------------------------------


async def test_concurrent_reader_sees_old_or_new_never_partial(ost: ObjectStorage) -> None:
    size = 3 * MiB + 123  # several read chunks, so reads interleave with writes
    versions = {bytes([c]) * size for c in b"ABCD"}
    await ost.write("atomic", b"A" * size)
    done = asyncio.Event()
    reads = 0

    async def writer() -> None:
        try:
            for c in b"BCDABCDA":
                data = bytes([c]) * size
                # Streamed in small pieces: the slowest way to produce the object.
                await ost.write("atomic", stream(*(data[i : i + 256 * 1024] for i in range(0, size, 256 * 1024))))
        finally:
            done.set()

    async def reader() -> None:
        nonlocal reads
        while not done.is_set():
            got = await ost.read_all("atomic")
            assert got in versions, f"partial or mixed object: {len(got)} bytes, starts {got[:1]!r}, ends {got[-1:]!r}"
            reads += 1

    await asyncio.gather(writer(), reader(), reader())
    assert reads > 0
    assert await ost.read_all("atomic") == b"A" * size


# -- large objects, bounded memory ------------------------------------------------------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"{field} missing from /proc/self/status")


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


LARGE_SIZE = 200 * MiB
MEMORY_BUDGET = 64 * MiB


async def test_large_object_streams_with_bounded_memory(ost: ObjectStorage) -> None:
    base = os.urandom(MiB)
    written = hashlib.sha256()

    async def produce() -> AsyncIterator[bytes]:
        # Each chunk differs (a counter up front), so a misplaced chunk changes the hash.
        for i in range(LARGE_SIZE // MiB):
            chunk = i.to_bytes(8, "big") + base[8:]
            written.update(chunk)
            yield chunk

    rss_before = _status_kib("VmRSS") * 1024
    can_reset = _reset_peak_rss()

    await ost.write("large/object.bin", produce())
    assert (await ost.stat("large/object.bin")).size == LARGE_SIZE

    read = hashlib.sha256()
    total = 0
    reader = await ost.read("large/object.bin")
    async with reader:
        async for chunk in reader:
            read.update(chunk)
            total += len(chunk)

    peak = _status_kib("VmHWM") * 1024
    assert total == LARGE_SIZE
    assert read.hexdigest() == written.hexdigest()
    if can_reset:
        growth = peak - rss_before
        assert growth < MEMORY_BUDGET, f"peak RSS grew by {growth / MiB:.1f} MiB"
