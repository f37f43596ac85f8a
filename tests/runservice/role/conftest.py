"""Fixtures for the runservice role tests: real runservice instances (embedded storage, or etcd +
S3) served on loopback, and a scripted executor speaking the executor protocol."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from agola.config import parse_config
from agola.roleclients.runservice import RunserviceClient
from agola.services.role import WebServer
from agola.services.runservice.core import RunserviceOptions
from agola.services.runservice.role import RunserviceRole
from agola.storage.datamanager import DataManagerOptions
from agola.types.runservice import (
    Arch,
    Container,
    DependCondition,
    Executor,
    ExecutorTask,
    RunConfigTask,
    RunConfigTaskDepend,
    RunCreateRequest,
    RunStep,
    Runtime,
    SaveContent,
    SaveToWorkspaceStep,
    Step,
)
from agola.types.stepquery import parse_archive_step, parse_log_query
from tests.support.services import INTERNAL_API_TOKEN, TOKEN_LINE, free_port

GROUP = "/project/p1/branch/master"

FAST = RunserviceOptions(
    scheduler_interval=0.5,
    cleaner_interval=0.3,
    task_updater_interval=1.0,
    fetcher_interval=0.3,
    archiver_interval=0.3,
    heartbeat_expiry=timedelta(seconds=60),
    lock_ttl=5.0,
    executor_timeout=3.0,
    max_backoff=0.5,
    datamanager=DataManagerOptions(
        checkpoint_interval=1.0,
        min_checkpoint_wals=20,
        sync_interval=0.5,
        lock_ttl=5.0,
        max_backoff=0.5,
    ),
)


class Instance:
    """One runservice role and its web server."""

    def __init__(self, config_text: str, options: RunserviceOptions) -> None:
        self.config_text = config_text
        self.options = options
        self.role: RunserviceRole | None = None
        self.server: WebServer | None = None
        self.client: RunserviceClient | None = None
        self.url = ""

    async def start(self) -> None:
        config = parse_config(TOKEN_LINE + self.config_text)
        self.role = RunserviceRole(config, options=self.options)
        await self.role.start()
        self.server = WebServer(self.role.web_app(), config.runservice.web, shutdown_timeout=1.0)
        await self.server.start()
        self.url = f"http://127.0.0.1:{self.server.port}"
        self.client = RunserviceClient(self.url, token=INTERNAL_API_TOKEN)

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()
        if self.server is not None:
            await self.server.stop()
        if self.role is not None:
            await self.role.stop()
        self.role = self.server = self.client = None

    @property
    def c(self) -> RunserviceClient:
        assert self.client is not None
        return self.client


def embedded_config(data_dir: Path, port: int) -> str:
    return f"runservice:\n  dataDir: {data_dir}\n  web: {{listenAddress: '127.0.0.1:{port}'}}\n"


def distributed_config(data_dir: Path, port: int, etcd: Any, s3: Any, bucket: str) -> str:
    return (
        "runservice:\n"
        f"  dataDir: {data_dir}\n"
        f"  web: {{listenAddress: '127.0.0.1:{port}'}}\n"
        f"  etcd: {{endpoints: '{etcd.endpoint}'}}\n"
        "  objectStorage:\n"
        "    type: s3\n"
        f"    endpoint: '{s3.endpoint}'\n"
        f"    bucket: {bucket}\n"
        f"    location: {s3.region}\n"
        f"    accessKey: {s3.access_key}\n"
        f"    secretAccessKey: {s3.secret_key}\n"
    )


@pytest.fixture
async def make_instance(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    instances: list[Instance] = []

    async def make(config_text: str | None = None, options: RunserviceOptions = FAST, *, start: bool = True) -> Instance:
        text = config_text or embedded_config(tmp_path / "rs", free_port())
        inst = Instance(text, options)
        instances.append(inst)
        if start:
            await inst.start()
        return inst

    yield make
    for inst in reversed(instances):
        task = asyncio.ensure_future(inst.stop())
        done, _ = await asyncio.wait([task], timeout=15)
        if not done:
            task.print_stack(limit=30)
            raise TimeoutError("instance stop hangs")
        task.result()


@pytest.fixture
async def rs(make_instance: Callable[..., Any]) -> Instance:
    inst: Instance = await make_instance()
    return inst


# --- the scripted executor --------------------------------------------------------------------


class ScriptedExecutor:
    """A fake executor serving the executor HTTP API (§7.2) from memory. Tests drive the tasks:
    ``tasks`` collects what the runservice pushes, ``report`` sends statuses back, ``logs`` hold
    the log text of each (task, step) and ``archives`` the workspace tars."""

    def __init__(self, executor_id: str, *, limit: int = 0, archs: list[str] | None = None) -> None:
        self.id = executor_id
        self.limit = limit
        self.archs = archs or ["amd64"]
        self.pushed: list[dict[str, Any]] = []
        self.tasks: dict[str, dict[str, Any]] = {}
        self.logs: dict[tuple[str, str], bytearray] = {}
        self.finished_logs: set[tuple[str, str]] = set()
        self.archives: dict[tuple[str, int], bytes] = {}
        self.new_task = asyncio.Condition()
        self.server: web.AppRunner | None = None
        self.url = ""
        self.client: RunserviceClient | None = None
        self._hb: asyncio.Task[None] | None = None
        self.active = 0
        self.max_running_seen = 0

    def executor(self) -> Executor:
        return Executor(
            id=self.id,
            listen_url=self.url,
            archs=[Arch(a) for a in self.archs],
            active_tasks_limit=self.limit,
            active_tasks=self.active,
            executor_group=self.id,
        )

    async def start(self, runservice_url: str, *, heartbeat_every: float = 0.5) -> None:
        app = web.Application()
        app.router.add_post("/api/v1alpha/executor", self._push)
        app.router.add_get("/api/v1alpha/executor/logs", self._log)
        app.router.add_get("/api/v1alpha/executor/archives", self._archive)
        self.server = web.AppRunner(app)
        await self.server.setup()
        port = free_port()
        await web.TCPSite(self.server, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"
        self.client = RunserviceClient(runservice_url, token=INTERNAL_API_TOKEN)
        await self.heartbeat()
        self._hb = asyncio.create_task(self._heartbeats(heartbeat_every))

    async def stop(self) -> None:
        if self._hb is not None:
            self._hb.cancel()
            await asyncio.gather(self._hb, return_exceptions=True)
            self._hb = None
        if self.server is not None:
            await self.server.cleanup()
            self.server = None
        if self.client is not None:
            await self.client.close()

    async def stop_heartbeats(self) -> None:
        if self._hb is not None:
            self._hb.cancel()
            await asyncio.gather(self._hb, return_exceptions=True)
            self._hb = None

    async def heartbeat(self) -> None:
        assert self.client is not None
        await self.client.executor_heartbeat(self.executor())

    async def _heartbeats(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.heartbeat()
            except Exception:  # noqa: BLE001 - the runservice may be restarting
                pass

    async def poll(self) -> None:
        """The executor's fallback: fetch the task list from the runservice."""
        assert self.client is not None
        for task, data in await self.client.executor_tasks(self.id):
            await self._got(task.to_json(data))

    async def _got(self, task: dict[str, Any]) -> None:
        async with self.new_task:
            first = task["id"] not in self.tasks
            self.tasks[task["id"]] = task
            if first:
                self.pushed.append(task)
            self.new_task.notify_all()

    async def _push(self, request: web.Request) -> web.Response:
        await self._got(await request.json())
        return web.Response()

    async def _log(self, request: web.Request) -> web.StreamResponse:
        q = parse_log_query(request.query)
        which = "setup" if q.setup else str(q.step)
        key = (request.query["taskid"], which)
        if key not in self.logs:
            return web.Response(status=404)
        resp = web.StreamResponse()
        resp.headers["Cache-Control"] = "no-cache"
        await resp.prepare(request)
        sent = 0
        while True:
            data = self.logs[key]
            if len(data) > sent:
                await resp.write(bytes(data[sent:]))
                sent = len(data)
            if not q.follow or key in self.finished_logs:
                if len(self.logs[key]) == sent:
                    break
                continue
            await asyncio.sleep(0.01)
        await resp.write_eof()
        return resp

    async def _archive(self, request: web.Request) -> web.Response:
        key = (request.query["taskid"], parse_archive_step(request.query))
        if key not in self.archives:
            return web.Response(status=404)
        return web.Response(body=self.archives[key])

    def finished_logs_tasks(self) -> set[str]:
        """Tasks this executor ran to the end (their setup log is complete)."""
        return {tid for tid, which in self.finished_logs if which == "setup"}

    async def wait_tasks(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        async with self.new_task:
            await asyncio.wait_for(self.new_task.wait_for(lambda: len(self.pushed) >= n), timeout)
        return list(self.pushed)

    async def report(self, task_id: str, phase: str, *, steps: list[str] | None = None,
                     setup: str = "success", fail_error: str = "") -> None:
        """Report a task status: ``steps`` phases default to ``phase`` for every step."""
        assert self.client is not None
        task = self.tasks[task_id]
        n = len(task["spec"].get("steps") or [])
        step_phases = steps if steps is not None else [phase] * n
        now = "2026-01-01T00:00:00Z"
        status = {
            "id": task_id,
            "phase": phase,
            "fail_error": fail_error,
            "setup_step": {"phase": setup, "start_time": now, "end_time": now},
            "steps": [
                {"phase": p, "start_time": now, "end_time": None if p == "running" else now,
                 "exit_status": 0 if p == "success" else (1 if p == "failed" else None)}
                for p in step_phases
            ],
            "start_time": now,
            "end_time": None if phase == "running" else now,
        }
        reported = ExecutorTask.from_json({"id": task_id, "spec": task["spec"], "status": status})  # drops the spec data
        await self.client.update_executor_task_status(self.id, reported)

    async def run_task(self, task_id: str, result: str = "success") -> None:
        """Run a task to ``result`` with a log line per step, as a real executor would."""
        task = self.tasks[task_id]
        n = len(task["spec"].get("steps") or [])
        self.logs[(task_id, "setup")] = bytearray(b"setup done\n")
        self.finished_logs.add((task_id, "setup"))
        for i in range(n):
            self.logs[(task_id, str(i))] = bytearray(f"step {i} of {task_id}\n".encode())
            self.finished_logs.add((task_id, str(i)))
        for i, step in enumerate(task["spec"].get("steps") or []):
            if step["type"] == "save_to_workspace":
                self.archives[(task_id, i)] = f"archive {task_id} {i}".encode()
        await self.report(task_id, "running", steps=(["running"] + ["notstarted"] * (n - 1)) if n else [])
        final = [result] * n if result == "success" else ((["success"] * (n - 1) + [result]) if n else [])
        await self.report(task_id, result, steps=final)


@pytest.fixture
async def make_executor() -> AsyncIterator[Callable[..., Any]]:
    executors: list[ScriptedExecutor] = []

    async def make(runservice_url: str, executor_id: str = "exec-1", **kw: Any) -> ScriptedExecutor:
        hb = kw.pop("heartbeat_every", 0.5)
        ex = ScriptedExecutor(executor_id, **kw)
        executors.append(ex)
        await ex.start(runservice_url, heartbeat_every=hb)
        return ex

    yield make
    for ex in executors:
        await ex.stop()


# --- run config builders ----------------------------------------------------------------------


def rct(tid: str, *parents: str | tuple[str, list[str]], steps: int = 1, workspace: bool = False,
        approval: bool = False, ignore_failure: bool = False, skip: bool = False) -> RunConfigTask:
    depends = {}
    for parent in parents:
        pid, conds = (parent, ["on_success"]) if isinstance(parent, str) else parent
        depends[pid] = RunConfigTaskDepend(task_id=pid, conditions=[DependCondition(c) for c in conds])
    step_list: list[Step] = [RunStep(name=f"s{i}", command=f"echo {i}") for i in range(steps)]
    if workspace:
        step_list.append(SaveToWorkspaceStep(contents=[SaveContent(source_dir=".", paths=["**"])]))
    return RunConfigTask(
        id=tid, name=tid, runtime=Runtime(containers=[Container(image="busybox")]), depends=depends,
        steps=step_list, needs_approval=approval, ignore_failure=ignore_failure, skip=skip,
    )


def create_req(*tasks: RunConfigTask, group: str = GROUP, **kw: Any) -> RunCreateRequest:
    return RunCreateRequest(run_config_tasks={t.id: t for t in tasks}, name="run", group=group, **kw)
