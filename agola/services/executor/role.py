"""The executor role: an ``ExecutorAgent`` (loops, task intake) and the executor HTTP API.

Config (``executor`` section): ``dataDir`` (id file, task logs and archives, host pods),
``runserviceURL``, ``web.listenAddress``, ``advertiseURL`` (the URL the runservice uses to reach
this executor; default: the listen address on loopback), ``driver.type`` (docker | host),
``docker.network``, ``busyboxPath``, ``labels``, ``activeTasksLimit``,
``allowPrivilegedContainers``.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from agola.config import Config
from agola.config import Executor as ExecutorSection
from agola.errors import BadRequest
from agola.pipeline.cachekey import render_for_task
from agola.roleclients.runservice import RunserviceClient
from agola.services.executor.agent import AgentOptions, AgentSettings, ExecutorAgent
from agola.services.executor.api import build_app
from agola.services.executor.drivers.base import Driver
from agola.services.executor.identity import executor_id
from agola.services.executor.store import RunserviceArchiveStore
from agola.services.role import Role
from agola.util.log import get_logger
from agola.util.privatefiles import private_dir

log = get_logger(__name__)


def make_driver(section: ExecutorSection, data_dir: Path) -> Driver:
    kind = section.driver.type
    if kind == "docker":
        from agola.services.executor.drivers.docker import DockerDriver, DockerDriverConfig

        return DockerDriver(DockerDriverConfig(
            busybox_path=section.busybox_path,
            network=section.docker.network,
            allow_privileged=section.allow_privileged_containers,
            io_dir=str(data_dir / "pods"),  # the pods' io dirs (FIFOs for workspaces and caches)
            archive_api_only=section.docker.archive_api_only,
        ))
    if kind == "host":
        from agola.services.executor.drivers.host import HostDriver, HostDriverConfig

        log.warning("executor host driver: tasks run untrusted code with this process's rights")
        return HostDriver(HostDriverConfig(base_dir=data_dir / "hostpods"))
    raise BadRequest(f"executor driver type {kind!r} is not supported (docker or host)")


class ExecutorRole(Role):
    name = "executor"

    def __init__(self, config: Config, *, options: AgentOptions | None = None, driver: Driver | None = None) -> None:
        super().__init__(config)
        self.options = options or AgentOptions()
        self._driver = driver  # tests may inject one; default: from the config
        self.driver: Driver | None = None
        self.client: RunserviceClient | None = None
        self.agent: ExecutorAgent | None = None
        self._app: web.Application | None = None

    @property
    def executor_id(self) -> str:
        return executor_id(self.section.data_dir)

    async def start(self) -> None:
        section = self.section
        if not section.data_dir:
            raise BadRequest("executor.dataDir is required")
        data_dir = private_dir(section.data_dir)  # task logs, archives, host-driver work dirs
        eid = executor_id(data_dir)
        self.driver = self._driver or make_driver(section, data_dir)
        await self.driver.setup()
        self.client = RunserviceClient(
            section.runservice_url, token=self.config.api_token_for("runservice", caller=self.name))
        settings = AgentSettings(
            executor_id=eid,
            listen_url=section.advertise_url or section.web.local_url(),
            data_dir=data_dir,
            labels=dict(section.labels),
            active_tasks_limit=section.active_tasks_limit,
            allow_privileged_containers=section.allow_privileged_containers,
            max_log_size=section.max_log_size,
            max_archive_size=section.max_archive_size,
        )
        # Workspaces this executor made are restored from its own task dirs (no HTTP round trip).
        store = RunserviceArchiveStore(self.client, tasks_dir=data_dir / "tasks")
        agent = ExecutorAgent(
            settings, client=self.client, driver=self.driver, store=store,
            options=self.options, render_key=render_for_task,
        )
        await agent.start()
        self.agent = agent
        log.info("executor started", executor=eid, listen_url=settings.listen_url, driver=section.driver.type)

    async def stop(self) -> None:
        agent, self.agent = self.agent, None
        if agent is not None:
            await agent.stop()
        if self.client is not None:
            await self.client.close()
            self.client = None
        if self.driver is not None:
            await self.driver.close()
            self.driver = None

    def web_app(self) -> web.Application:
        if self._app is None:
            self._app = build_app(lambda: self.agent, api_token=self.config.api_token_for(self.name))
        return self._app


__all__ = ["ExecutorRole", "make_driver"]
