"""Object storage throughput for a large object, against the plain-file baseline.

- O1 posix write: a file streamed into the store (``write`` of an async stream, fsync) vs
  ``shutil.copyfile`` + fsync of the same file.
- O2 posix read: an object streamed out to a file (``read`` chunks) vs ``shutil.copyfile``.
- O3/O4 references: the same copies as a plain Python 1 MiB read/write loop, the ceiling any
  user-space writer reaches here (``shutil.copyfile`` copies inside the kernel, with sendfile).
  O1/O2 are judged against them: the storage layer's own overhead.
- O5/O6 S3 write/read when ``AGOLA_BENCH_S3_ENDPOINT`` is set (``AGOLA_BENCH_S3_ACCESS_KEY``,
  ``AGOLA_BENCH_S3_SECRET_KEY`` default to moto's ``testing``; a fresh bucket is used). No baseline.

Each figure is the best of a few runs, ours and the baseline interleaved (same cache and load).
``shutil.copyfile`` copies inside the kernel (sendfile): it is the ceiling, not a peer.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from agola.storage.objectstorage.base import CHUNK_SIZE, ObjectStorage
from agola.storage.objectstorage.posix import PosixObjectStorage
from bench.common import BenchRow

MB = 1_000_000


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    # Read inline (the page cache is warm): measure the storage layer, not the source's own hops.
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(CHUNK_SIZE):
            yield chunk


async def _best_rates(size: int, runs: int, *sides: Callable[[int], Awaitable[None]]) -> list[float]:
    """Best MB/s of each side, runs interleaved so all see the same page-cache/load conditions."""
    best = [0.0] * len(sides)
    for i in range(runs):
        for side, once in enumerate(sides):
            started = time.perf_counter()
            await once(i)
            best[side] = max(best[side], size / MB / (time.perf_counter() - started))
    return best


async def _best_rate(size: int, runs: int, once: Callable[[int], Awaitable[None]]) -> float:
    best = 0.0
    for i in range(runs):
        started = time.perf_counter()
        await once(i)
        best = max(best, size / MB / (time.perf_counter() - started))
    return best


def _copy(src: Path, dst: Path, fsync: bool) -> None:
    shutil.copyfile(src, dst)
    if fsync:
        with open(dst, "rb") as f:
            os.fsync(f.fileno())


def _plain_copy(src: Path, dst: Path, fsync: bool) -> None:
    with open(src, "rb", buffering=0) as inp, open(dst, "wb", buffering=0) as out:
        while chunk := inp.read(CHUNK_SIZE):
            out.write(chunk)
        if fsync:
            os.fsync(out.fileno())


async def _read_into_file(ost: ObjectStorage, path: str, dst: Path) -> None:
    """Read an object out to a file (written inline: measure the storage layer, not the sink)."""
    reader = await ost.read(path)
    with open(dst, "wb", buffering=0) as out:
        async with reader:
            async for chunk in reader:
                out.write(chunk)


async def _drain(ost: ObjectStorage, path: str) -> None:
    reader = await ost.read(path)
    async with reader:
        async for _ in reader:
            pass


async def _posix_rows(work: Path, source: Path, size: int, runs: int) -> list[BenchRow]:
    ost = PosixObjectStorage(work / "ost")

    async def ours_write(i: int) -> None:
        await ost.write("bench/large", _file_chunks(source))

    async def base_write(i: int) -> None:
        await asyncio.to_thread(_copy, source, work / "copy", True)

    async def plain_write(i: int) -> None:
        await asyncio.to_thread(_plain_copy, source, work / "plain", True)

    async def ours_read(i: int) -> None:
        await _read_into_file(ost, "bench/large", work / "out")

    async def base_read(i: int) -> None:
        await asyncio.to_thread(_copy, work / "copy", work / "out-copy", False)

    async def plain_read(i: int) -> None:
        await asyncio.to_thread(_plain_copy, work / "copy", work / "out-plain", False)

    w_ours, w_base, w_plain = await _best_rates(size, runs, ours_write, base_write, plain_write)
    r_ours, r_base, r_plain = await _best_rates(size, runs, ours_read, base_read, plain_read)
    mb = size // MB
    return [
        BenchRow("O1", f"posix: stream a {mb} MB file in (fsync)", w_ours, w_base, "MB/s",
                 ">= 70% of O3", w_ours >= 0.7 * w_plain, "baseline: shutil.copyfile + fsync (in-kernel copy)"),
        BenchRow("O2", f"posix: stream a {mb} MB object out to a file", r_ours, r_base, "MB/s",
                 ">= 70% of O4", r_ours >= 0.7 * r_plain, "baseline: shutil.copyfile (in-kernel copy)"),
        BenchRow("O3", "reference: plain 1 MiB read/write loop + fsync", w_plain, None, "MB/s", "-", None,
                 "the ceiling for a user-space writer"),
        BenchRow("O4", "reference: plain 1 MiB read/write loop", r_plain, None, "MB/s", "-", None,
                 "the ceiling for a user-space copy"),
    ]


async def _s3_rows(endpoint: str, source: Path, size: int, runs: int) -> list[BenchRow]:
    from agola.storage.objectstorage.s3 import S3ObjectStorage

    ost = S3ObjectStorage(
        endpoint=endpoint,
        bucket=f"agola-bench-{uuid.uuid4().hex[:12]}",
        access_key=os.environ.get("AGOLA_BENCH_S3_ACCESS_KEY", "testing"),
        secret_key=os.environ.get("AGOLA_BENCH_S3_SECRET_KEY", "testing"),
        location=os.environ.get("AGOLA_BENCH_S3_LOCATION", "us-east-1"),
    )
    try:
        w = await _best_rate(size, runs, lambda i: ost.write("bench/large", _file_chunks(source)))
        r = await _best_rate(size, runs, lambda i: _drain(ost, "bench/large"))
        await ost.delete("bench/large")
    finally:
        await ost.close()
    mb = size // MB
    return [
        BenchRow("O5", f"s3: stream a {mb} MB file in (multipart)", w, None, "MB/s", "-", None, endpoint),
        BenchRow("O6", f"s3: stream a {mb} MB object out", r, None, "MB/s", "-", None, endpoint),
    ]


async def run(quick: bool = False) -> list[BenchRow]:
    size = (32 if quick else 256) * MB
    runs = 2 if quick else 3
    with tempfile.TemporaryDirectory(prefix="agola-bench-ost-") as tmp:
        work = Path(tmp)
        source = work / "source.bin"
        block = os.urandom(CHUNK_SIZE)
        with open(source, "wb") as f:
            for _ in range(size // CHUNK_SIZE):
                f.write(block)
            f.write(block[: size % CHUNK_SIZE])
        rows = await _posix_rows(work, source, size, runs)
        endpoint = os.environ.get("AGOLA_BENCH_S3_ENDPOINT")
        if endpoint:
            rows += await _s3_rows(endpoint, source, size, 1 if quick else 2)
    return rows


if __name__ == "__main__":
    for row in asyncio.run(run(quick=True)):
        print(row)
