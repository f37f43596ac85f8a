"""Runservice benchmarks (issue 5, P5), on embedded storage, through the HTTP API.

- R1 runs list p50: ``GET /api/v1alpha/runs`` (default page of 25, newest first) over 100,000
  stored runs (archived runs written through the datamanager, mirrored into the readdb).
- R2 runs list p50 with a group filter (one project out of 100) over the same runs.
- R3 scheduling throughput: one run of 1,000 independent tasks, started; tasks per second from the
  start action until a scripted executor has received every task (pushed with its spec data).

``quick`` uses 10,000 runs and 200 tasks.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from agola.config import parse_config
from agola.roleclients.runservice import RunserviceClient
from agola.services.role import WebServer
from agola.services.runservice.core import RunserviceOptions
from agola.services.runservice.role import RunserviceRole
from agola.services.runservice.store import DT_RUN
from agola.storage.datamanager import Action, DataManagerOptions
from agola.types.runservice import (
    Arch,
    Container,
    Executor,
    Run,
    RunConfigTask,
    RunCreateRequest,
    RunPhase,
    RunResult,
    RunStep,
    Runtime,
)
from bench.common import BenchRow

WAL_ACTIONS = 2000


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _start(data_dir: Path) -> tuple[RunserviceRole, WebServer, RunserviceClient]:
    config = parse_config(
        f"runservice:\n  dataDir: {data_dir}\n  web: {{listenAddress: '127.0.0.1:{_free_port()}'}}\n"
    )
    options = RunserviceOptions(
        scheduler_interval=1.0,
        datamanager=DataManagerOptions(checkpoint_interval=2.0, min_checkpoint_wals=50),
    )
    role = RunserviceRole(config, options=options)
    await role.start()
    server = WebServer(role.web_app(), config.runservice.web, shutdown_timeout=1.0)
    await server.start()
    return role, server, RunserviceClient(f"http://127.0.0.1:{server.port}")


async def _store_runs(role: RunserviceRole, n: int) -> None:
    assert role.dm is not None and role.readdb is not None
    now = datetime(2026, 1, 1, tzinfo=UTC)
    seq = 0
    batch: list[Action] = []
    for i in range(n):
        seq += 1
        run_id = f"{1:013d}-{seq:013d}"
        run = Run(
            id=run_id, name="bench", counter=i + 1, group=f"/project/p{i % 100}/branch/master",
            phase=RunPhase.FINISHED, result=RunResult.SUCCESS, enqueue_time=now, start_time=now,
            end_time=now, archived=True,
        )
        batch.append(Action.put(DT_RUN, run_id, run.to_json_bytes()))
        if len(batch) >= WAL_ACTIONS:
            await role.dm.write_wal(batch)
            batch = []
    if batch:
        await role.dm.write_wal(batch)
    # Wait for the readdb to mirror them all.
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        row = await role.readdb.db.fetchone("SELECT count(*) FROM run_ost")
        if row and row[0] >= n:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("readdb did not catch up")


async def _p50(client: RunserviceClient, requests: int, **params: Any) -> float:
    await client.list_runs(**params)  # warm up
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        runs, _ = await client.list_runs(**params)
        times.append((time.perf_counter() - started) * 1000)
        assert runs
    return statistics.median(times)


class _CountingExecutor:
    def __init__(self) -> None:
        self.received = 0
        self.all_in = asyncio.Event()
        self.expected = 0

    async def push(self, request: web.Request) -> web.Response:
        await request.read()
        self.received += 1
        if self.received >= self.expected:
            self.all_in.set()
        return web.Response()


async def _scheduling(client: RunserviceClient, tasks: int) -> float:
    ex = _CountingExecutor()
    ex.expected = tasks
    app = web.Application()
    app.router.add_post("/api/v1alpha/executor", ex.push)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await client.executor_heartbeat(
            Executor(id="bench-executor", listen_url=f"http://127.0.0.1:{port}", archs=[Arch.AMD64])
        )
        config_tasks = {
            f"t{i:04d}": RunConfigTask(
                id=f"t{i:04d}", name=f"t{i:04d}", runtime=Runtime(containers=[Container(image="busybox")]),
                steps=[RunStep(name="s", command="true")],
            )
            for i in range(tasks)
        }
        run = (await client.create_run(RunCreateRequest(
            run_config_tasks=config_tasks, name="bench", group="/project/bench/branch/master"))).run
        started = time.perf_counter()
        await client.start_run(run.id)
        await asyncio.wait_for(ex.all_in.wait(), 600)
        return tasks / (time.perf_counter() - started)
    finally:
        await runner.cleanup()


async def run(quick: bool = False) -> list[BenchRow]:
    n_runs = 10_000 if quick else 100_000
    n_tasks = 200 if quick else 1_000
    with tempfile.TemporaryDirectory(prefix="agola-bench-rs-") as tmp:
        role, server, client = await _start(Path(tmp) / "rs")
        try:
            await _store_runs(role, n_runs)
            p50 = await _p50(client, 200)
            p50_group = await _p50(client, 200, groups=["/project/p42"])
            rate = await _scheduling(client, n_tasks)
        finally:
            await client.close()
            await server.stop()
            await role.stop()
    return [
        BenchRow("R1", f"runs list p50 ({n_runs:,} stored runs, page of 25)", round(p50, 2), None, "ms",
                 "< 20 ms", p50 < 20),
        BenchRow("R2", f"runs list p50, group filter ({n_runs:,} runs)", round(p50_group, 2), None, "ms",
                 "< 20 ms", p50_group < 20),
        BenchRow("R3", f"tasks scheduled and pushed per second ({n_tasks:,} queued tasks)", round(rate, 1),
                 None, "tasks/s", "-", None),
    ]


if __name__ == "__main__":
    for row in asyncio.run(run(quick=True)):
        print(row)

