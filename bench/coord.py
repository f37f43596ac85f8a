"""Coordination throughput: raw puts/s, sequential and with 32 concurrent writers.

Embedded always; etcd at ``AGOLA_BENCH_ETCD`` (an endpoint) or on a private etcd started here when
``/usr/bin/etcd`` exists. These raw figures are the baseline the datamanager benchmark compares
its WAL writes to.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator

from agola.storage.coord.base import Coordination
from agola.storage.coord.embedded import EmbeddedCoordination
from agola.storage.coord.sequence import next_sequence
from bench.common import BenchRow

CONCURRENCY = 32


async def puts_per_second(coord: Coordination, n: int, concurrency: int) -> float:
    value = b"x" * 200
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await coord.put(f"bench/{i % 1000}", value)

    started = time.perf_counter()
    if concurrency == 1:
        for i in range(n):
            await coord.put(f"bench/{i % 1000}", value)
    else:
        await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - started)


async def sequences_per_second(coord: Coordination, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        await next_sequence(coord, "bench-seq")
    return n / (time.perf_counter() - started)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _private_etcd() -> Iterator[str | None]:
    """An etcd on loopback for the run (None when there is no etcd binary)."""
    binary = shutil.which("etcd") or "/usr/bin/etcd"
    if not os.path.exists(binary):
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="agola-bench-etcd-") as tmp:
        client, peer = f"http://127.0.0.1:{_free_port()}", f"http://127.0.0.1:{_free_port()}"
        proc = subprocess.Popen(
            [binary, "--name", "bench", "--data-dir", f"{tmp}/data", "--listen-client-urls", client,
             "--advertise-client-urls", client, "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"bench={peer}", "--log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"{client}/health", timeout=1):
                        break
                except OSError:
                    time.sleep(0.05)
            yield client
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@contextlib.asynccontextmanager
async def _etcd_coord() -> AsyncIterator[Coordination | None]:
    from agola.storage.coord.etcd import EtcdCoordination

    endpoint = os.environ.get("AGOLA_BENCH_ETCD", "")
    with contextlib.ExitStack() as stack:
        if not endpoint:
            endpoint = stack.enter_context(_private_etcd()) or ""
        if not endpoint:
            yield None
            return
        coord = EtcdCoordination([endpoint], f"agola-bench-{uuid.uuid4().hex[:8]}/")
        try:
            yield coord
        finally:
            with contextlib.suppress(Exception):
                await coord.delete("", prefix=True)
            await coord.close()


async def _measure(coord: Coordination, n: int) -> tuple[float, float, float]:
    await puts_per_second(coord, 50, 1)  # warm up (connection, sqlite pages)
    seq = await puts_per_second(coord, n, 1)
    conc = await puts_per_second(coord, n * 2, CONCURRENCY)
    seqs = await sequences_per_second(coord, max(n // 4, 50))
    return seq, conc, seqs


async def run(quick: bool = False) -> list[BenchRow]:
    n = 300 if quick else 2000
    with tempfile.TemporaryDirectory(prefix="agola-bench-coord-") as tmp:
        emb = await EmbeddedCoordination.open(tmp, "bench/")
        try:
            e_seq, e_conc, e_sseq = await _measure(emb, n)
        finally:
            await emb.close()

    rows: list[BenchRow] = []
    async with _etcd_coord() as etcd:
        if etcd is not None:
            x_seq, x_conc, x_sseq = await _measure(etcd, n)
            rows += [
                BenchRow("C4", "etcd: sequential puts", x_seq, None, "ops/s", "-", None),
                BenchRow("C5", f"etcd: puts, {CONCURRENCY} concurrent", x_conc, None, "ops/s", "-", None),
                BenchRow("C6", "etcd: next_sequence (CAS txn)", x_sseq, None, "ops/s", "-", None),
            ]
            base: tuple[float | None, float | None, float | None] = (x_seq, x_conc, x_sseq)
        else:
            base = (None, None, None)
    note = "baseline: etcd on loopback" if base[0] is not None else "no etcd available"
    target = ">= 100% of etcd"

    def met(ours: float, b: float | None) -> bool | None:
        return None if b is None else ours >= b

    return [
        BenchRow("C1", "embedded: sequential puts", e_seq, base[0], "ops/s", target, met(e_seq, base[0]), note),
        BenchRow("C2", f"embedded: puts, {CONCURRENCY} concurrent", e_conc, base[1], "ops/s", target, met(e_conc, base[1]), note),
        BenchRow("C3", "embedded: next_sequence (CAS txn)", e_sseq, base[2], "ops/s", target, met(e_sseq, base[2]), note),
    ] + rows
