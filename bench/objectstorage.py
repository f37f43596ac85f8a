"""Object storage throughput for a large object, against the plain-file baseline.

- O1 posix write: a file streamed into the store (``write`` of an async stream, fsync) vs
  ``shutil.copyfile`` + fsync of the same file.
- O2 posix read: an object streamed out (``read`` chunks) vs a plain ``open().read()`` loop.
- O3/O4 S3 write/read when ``AGOLA_BENCH_S3_ENDPOINT`` is set (``AGOLA_BENCH_S3_ACCESS_KEY``,
  ``AGOLA_BENCH_S3_SECRET_KEY`` default to moto's ``testing``; a fresh bucket is used). No baseline.

Each figure is the best of a few runs (the page cache is warm for both sides).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

from agola.storage.objectstorage.base import CHUNK_SIZE, ObjectStorage
from agola.storage.objectstorage.posix import PosixObjectStorage
from bench.common import BenchRow

MB = 1_000_000
TARGET = ">= 50% of baseline"


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with open(path, "rb", buffering=0) as f:
        while chunk := await asyncio.to_thread(f.read, CHUNK_SIZE):
            yield chunk


async def _best_rate(size: int, runs: int, once: Callable[[int], Awaitable[None]]) -> float:
    best = 0.0
    for i in range(runs):
        started = time.perf_counter()
        await once(i)
        best = max(best, size / MB / (time.perf_counter() - started))
    return best


def _copy_with_fsync(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    with open(dst, "rb") as f:
        os.fsync(f.fileno())


def _read_file(path: Path) -> None:
    with open(path, "rb", buffering=0) as f:
        while f.read(CHUNK_SIZE):
            pass


async def _drain(ost: ObjectStorage, path: str) -> None:
    reader = await ost.read(path)
    async with reader:
        async for _ in reader:
            pass


def _met(ours: float, baseline: float) -> bool:
    return ours >= 0.5 * baseline


async def _posix_rows(work: Path, source: Path, size: int, runs: int) -> list[BenchRow]:
    ost = PosixObjectStorage(work / "ost")

    async def ours_write(i: int) -> None:
        await ost.write(f"bench/large-{i}", _file_chunks(source))

    async def base_write(i: int) -> None:
        await asyncio.to_thread(_copy_with_fsync, source, work / f"copy-{i}")

    w_ours = await _best_rate(size, runs, ours_write)
    w_base = await _best_rate(size, runs, base_write)
    r_ours = await _best_rate(size, runs, lambda i: _drain(ost, f"bench/large-{i}"))
    r_base = await _best_rate(size, runs, lambda i: asyncio.to_thread(_read_file, work / f"copy-{i}"))
    mb = size // MB
    return [
        BenchRow("O1", f"posix: stream a {mb} MB file in (fsync)", w_ours, w_base, "MB/s", TARGET,
                 _met(w_ours, w_base), "baseline: shutil.copyfile + fsync"),
        BenchRow("O2", f"posix: stream a {mb} MB object out", r_ours, r_base, "MB/s", TARGET,
                 _met(r_ours, r_base), "baseline: plain 1 MiB read loop"),
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
        BenchRow("O3", f"s3: stream a {mb} MB file in (multipart)", w, None, "MB/s", "-", None, endpoint),
        BenchRow("O4", f"s3: stream a {mb} MB object out", r, None, "MB/s", "-", None, endpoint),
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
