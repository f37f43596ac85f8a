"""Fixtures for the executor role tests: a real runservice (embedded storage) and real executor
roles (docker driver on network ``none``, or the host driver), each on its own loopback port and
data dir, so its executor id (a fresh UUID in its data dir) is unique on the shared Docker engine."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agola.config import parse_config
from agola.services.executor.agent import AgentOptions
from agola.services.executor.drivers.docker import DockerDriver, DockerDriverConfig
from agola.services.executor.role import ExecutorRole
from agola.services.role import WebServer
from agola.types.runservice import (
    Container,
    DependCondition,
    RunConfigTask,
    RunConfigTaskDepend,
    RunCreateRequest,
    RunStep,
    Runtime,
    Step,
)
from tests.runservice.role.conftest import FAST, Instance, embedded_config
from tests.support.services import BUSYBOX_BIN, BUSYBOX_IMAGE, TOKEN_LINE, free_port

GROUP = "/project/p1/branch/master"

FAST_AGENT = AgentOptions(
    heartbeat_interval=0.5,
    poll_interval=0.5,
    status_interval=0.5,
    orphans_interval=0.5,
    data_clean_interval=0.5,
    stop_grace=5.0,
)


def executor_config(data_dir: Path, port: int, runservice_url: str, *, driver: str = "docker", limit: int = 2,
                    labels: dict[str, str] | None = None) -> str:
    label_lines = "".join(f"    {k}: '{v}'\n" for k, v in (labels or {}).items())
    return (
        f"{TOKEN_LINE}executor:\n"
        f"  dataDir: {data_dir}\n"
        f"  runserviceURL: {runservice_url}\n"
        f"  web: {{listenAddress: '127.0.0.1:{port}'}}\n"
        f"  driver: {{type: {driver}}}\n"
        "  docker: {network: none}\n"
        f"  busyboxPath: {BUSYBOX_BIN}\n"
        f"  activeTasksLimit: {limit}\n"
        + (f"  labels:\n{label_lines}" if label_lines else "")
    )


class ExecutorInstance:
    """One executor role and its web server, in this process."""

    def __init__(self, config_text: str, data_dir: Path) -> None:
        self.config_text = config_text
        self.data_dir = data_dir
        self.role: ExecutorRole | None = None
        self.server: WebServer | None = None

    async def start(self) -> None:
        config = parse_config(self.config_text)
        self.role = ExecutorRole(config, options=FAST_AGENT)
        await self.role.start()
        self.server = WebServer(self.role.web_app(), config.executor.web, shutdown_timeout=1.0)
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
        if self.role is not None:
            await self.role.stop()
        self.role = self.server = None

    @property
    def id(self) -> str:
        return (self.data_dir / "id").read_text().strip()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"


@pytest.fixture
async def rs(tmp_path: Path) -> AsyncIterator[Instance]:
    inst = Instance(embedded_config(tmp_path / "rs", free_port()), FAST)
    await inst.start()
    yield inst
    await inst.stop()


@pytest.fixture
async def make_executor(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[ExecutorInstance] = []

    async def make(runservice_url: str, *, driver: str = "docker", limit: int = 2, data_dir: Path | None = None,
                   port: int | None = None, labels: dict[str, str] | None = None) -> ExecutorInstance:
        data_dir = data_dir or tmp_path / f"executor-{uuid.uuid4().hex[:8]}"
        text = executor_config(data_dir, port or free_port(), runservice_url, driver=driver, limit=limit,
                               labels=labels)
        inst = ExecutorInstance(text, data_dir)
        started.append(inst)
        await inst.start()
        return inst

    yield make
    for inst in reversed(started):
        await inst.stop()
    await _remove_pods([inst for inst in started if (inst.data_dir / "id").exists()])


async def _remove_pods(instances: list[ExecutorInstance]) -> None:
    """Whatever a failed test left on the Docker engine (pods of these executors only)."""
    if not instances:
        return
    try:
        driver = DockerDriver(DockerDriverConfig(network="none", busybox_path=BUSYBOX_BIN))
        await driver.setup()
    except Exception:  # noqa: BLE001 - no engine: nothing to clean
        return
    try:
        for inst in instances:
            for pod in await driver.list_pods(inst.id):
                await driver.remove_pod(pod.pod_id)
    finally:
        await driver.close()


# --- run config builders ----------------------------------------------------------------------


def task(name: str, *steps: Step, parents: tuple[str, ...] = (), image: str = BUSYBOX_IMAGE,
         **kw: Any) -> RunConfigTask:
    """A run config task with a fresh uuid id (``name`` is the task name)."""
    return RunConfigTask(
        id=str(uuid.uuid4()), name=name, runtime=Runtime(containers=[Container(image=image)]),
        depends={p: RunConfigTaskDepend(task_id=p, conditions=[DependCondition("on_success")]) for p in parents},
        steps=list(steps), **kw,
    )


def run_step(command: str, name: str = "") -> RunStep:
    return RunStep(name=name or command[:20], command=command)


def create_req(*tasks: RunConfigTask) -> RunCreateRequest:
    return RunCreateRequest(run_config_tasks={t.id: t for t in tasks}, name="run", group=GROUP)


async def wait_run(rs: Instance, run_id: str, cond: Callable[[Any], bool], timeout: float = 30.0) -> Any:
    from tests.support.waiting import wait_for

    async def check() -> Any:
        run = (await rs.c.get_run(run_id)).run
        return run if cond(run) else None

    return await wait_for(check, timeout, interval=0.05)


async def read_log(rs: Instance, run_id: str, task_id: str, *, step: int | None = None, setup: bool = False) -> str:
    data = b"".join([c async for c in rs.c.get_log(run_id, task_id, step=step, setup=setup)])
    return data.decode(errors="replace")


async def start(rs: Instance, *tasks: RunConfigTask) -> str:
    run = (await rs.c.create_run(create_req(*tasks))).run
    await rs.c.start_run(run.id)
    return str(run.id)

