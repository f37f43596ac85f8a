"""``ExecutorClient`` and the ``ResponseStream`` helper against the real executor API app (an
agent that is not started: no driver work, only its task files and its task intake)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from agola.errors import BadRequest, NotExist
from agola.roleclients.executor import ExecutorClient
from agola.roleclients.runservice import RunserviceClient
from agola.services.executor.agent import AgentSettings, ExecutorAgent
from agola.services.executor.api import build_app
from agola.services.executor.drivers.host import HostDriver, HostDriverConfig
from agola.services.executor.store import LocalArchiveStore
from agola.types.runservice import ExecutorTask, ExecutorTaskSpec, ExecutorTaskSpecData
from agola.types.stepquery import StepQuery
from tests.support.services import free_port
from tests.support.stepquery import ARCHIVE_QUERIES, LOG_QUERIES, Query, check_server

BIG = 64 << 20


@pytest.fixture
async def executor(tmp_path: Path) -> AsyncIterator[tuple[ExecutorAgent, str]]:
    agent = ExecutorAgent(
        AgentSettings(executor_id="ex1", listen_url="", data_dir=tmp_path / "data"),
        client=RunserviceClient("http://127.0.0.1:1"),
        driver=HostDriver(HostDriverConfig(base_dir=tmp_path / "pods")),
        store=LocalArchiveStore(tmp_path / "store"),
    )
    runner = web.AppRunner(build_app(lambda: agent))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield agent, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _files(agent: ExecutorAgent, task_id: str) -> Path:
    task_dir = agent.task_dir(task_id)
    (task_dir / "archives").mkdir(parents=True)
    (task_dir / "logs" / "steps").mkdir(parents=True)
    (task_dir / "logs" / "setup.log").write_bytes(b"setup done\n")
    (task_dir / "logs" / "steps" / "0.log").write_bytes(b"step 0\n")
    with open(task_dir / "archives" / "1.tar", "wb") as f:
        f.truncate(BIG)  # sparse: 64 MiB of zeros, cheap to make and to read
    return task_dir


async def test_logs_and_archives(executor: tuple[ExecutorAgent, str]) -> None:
    agent, url = executor
    _files(agent, "t1")
    async with ExecutorClient(url) as client:
        assert await client.get_log("t1", StepQuery.of(None)).read() == b"setup done\n"
        assert await client.get_log("t1", StepQuery.of(0, follow=True)).read() == b"step 0\n"  # finished: ends
        with pytest.raises(NotExist):
            await client.get_log("t1", StepQuery.of(3)).read()
        with pytest.raises(NotExist):
            await client.get_archive("t1", 0).open()
        with pytest.raises(BadRequest, match="invalid task id"):
            await client.get_log("../etc", StepQuery.of(None)).read()
        stream = await client.get_archive("t1", 1).open()
        assert stream.content_length == BIG
        total = 0
        async for chunk in stream:
            assert 0 < len(chunk) <= stream.chunk_size
            total += len(chunk)
        assert total == BIG


async def test_a_stream_reads_only_as_fast_as_it_is_consumed_and_closes_early(
    executor: tuple[ExecutorAgent, str]
) -> None:
    agent, url = executor
    _files(agent, "t1")
    async with aiohttp.ClientSession() as session:
        client = ExecutorClient(url, session=session)
        stream = client.get_archive("t1", 1)
        first = await stream.__anext__()
        await asyncio.sleep(0.3)  # the server would send everything now if nothing held it back
        assert len(first) <= stream.chunk_size
        assert stream.received < 8 << 20, stream.received  # a 64 MiB body: only buffers' worth came
        await stream.aclose()
        with pytest.raises(StopAsyncIteration):
            await stream.__anext__()
        # The dropped connection is not reused half-read: the next stream reads a whole body.
        async with client.get_log("t1", StepQuery.of(None)) as log:
            assert b"".join([c async for c in log]) == b"setup done\n"


async def test_push_task(executor: tuple[ExecutorAgent, str]) -> None:
    _, url = executor
    task = ExecutorTask(id="t2", spec=ExecutorTaskSpec(executor_id="ex1", run_id="r1"))
    async with ExecutorClient(url) as client:
        # Its run is gone (no spec data): nothing to start.
        assert await client.push_task(task, None) == "ignored"
        other = ExecutorTask(id="t3", spec=ExecutorTaskSpec(executor_id="someone-else", run_id="r1"))
        with pytest.raises(BadRequest, match="assigned to executor"):
            await client.push_task(other, ExecutorTaskSpecData())


async def test_step_queries(executor: tuple[ExecutorAgent, str]) -> None:
    _, url = executor
    async with aiohttp.ClientSession() as http:

        def get(path: str) -> Callable[[Query], Awaitable[aiohttp.ClientResponse]]:
            async def send(query: Query) -> aiohttp.ClientResponse:
                return await http.get(f"{url}/api/v1alpha/executor/{path}", params={"taskid": "nope", **query})

            return send

        await check_server(get("logs"), LOG_QUERIES)
        await check_server(get("archives"), ARCHIVE_QUERIES)
