"""The Docker driver (aiodocker): a pod is container 0 plus service containers in its netns.

Container 0 must run any image, even one with no shell and no tools. The host's *static* busybox
(Debian's ``busybox-static``, path from config) is bind-mounted read-only at
``/.agola/bin/busybox`` and, unless the task gives container 0 an entrypoint, runs as its pid 1:
the step runner (``dockerrunner``: steps and helpers run as its children, no ``docker exec``) or
a shell waiting on its stdin (``dockerstart``; the executor closes it to end the pod,
``dockerend``), whose waits reap every child, including orphans re-parented to pid 1, so zombies
do not pile up. Every helper the executor needs inside the pod (``mkdir -p``, ``$HOME`` lookup,
file digests for cache keys) is run with that busybox; files go in and out as tar
streams of that busybox through FIFOs in the pod's io dir (``dockerio``, a host dir bind-mounted
at ``/.agola/io``), or with the archive API, never through the image's tools.

Service containers (index > 0) join container 0's network namespace (``container:<id0>``), so they
are reachable on ``localhost``. Labels identify executor, pod, task and container index.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiodocker
import aiohttp
import attrs
from aiodocker.exceptions import DockerError
from aiodocker.jsonstream import json_stream_stream

from agola.services.executor.drivers.base import (
    LABEL_AGOLA,
    LABEL_CONTAINER_INDEX,
    LABEL_EXECUTOR_ID,
    LABEL_POD_ID,
    LABEL_TASK_ID,
    ContainerSpec,
    Driver,
    Pod,
    PodInfo,
    PodSetupError,
    PodSpec,
    RegistryCredentials,
    Sink,
    discard,
    host_arch,
    split_entrypoint,
)
from agola.services.executor.drivers.dockerend import STDIN_CONFIG, end_by_itself
from agola.services.executor.drivers.dockerio import POD_IO_DIR, IoDir, root_remapped
from agola.services.executor.drivers.dockerpod import BUSYBOX, SCRIPT_DIR, SCRIPT_TMPFS_SIZE, DockerPod
from agola.services.executor.drivers.dockerrunner import StepRunner, shares_mounts
from agola.services.executor.drivers.dockerstart import read_workdir, runner, sleeper
from agola.util.aio import cancel_and_wait
from agola.util.log import get_logger

log = get_logger(__name__)

# How long a cancelled pod setup waits for the engine's answer to a create, to remove the container.
CREATE_CLEANUP_TIMEOUT = 10.0

PRIVILEGED_REFUSED = "Executor doesn't allow executing privileged containers."


@attrs.frozen
class DockerDriverConfig:
    busybox_path: str = "/usr/bin/busybox"  # a *static* busybox on the Docker host
    network: str = ""  # "" = the engine's default; "none", "host" or a network name
    allow_privileged: bool = False
    docker_url: str | None = None  # None = from the environment (DOCKER_HOST) or the local socket
    # Host dir of the pods' io dirs (see dockerio): "" = a private dir under the system temp dir.
    # Used with a local engine only; archive_api_only=True always uses the Docker archive API.
    io_dir: str = ""
    archive_api_only: bool = False


def image_registry(image: str) -> str:
    """The registry host of an image reference (``docker.io`` for Docker Hub names)."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def find_registry_auth(image: str, auths: Mapping[str, RegistryCredentials]) -> RegistryCredentials | None:
    """Match the image's registry against keys written as ``host``, ``https://host/v2/``, ..."""
    host = image_registry(image)
    forms = {host}
    for scheme in ("https://", "http://"):
        forms.update({f"{scheme}{host}", f"{scheme}{host}/v1/", f"{scheme}{host}/v2/"})
    if host == "docker.io":
        forms.update({"index.docker.io", "https://index.docker.io/v1/"})
    for key, creds in auths.items():
        if key in forms:
            return creds
    return None


def _registry_auth_header(image: str, creds: RegistryCredentials) -> str:
    username, password = creds.username, creds.password
    if creds.auth:
        username, _, password = base64.b64decode(creds.auth).decode().partition(":")
    payload = {"username": username, "password": password, "serveraddress": image_registry(image)}
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


class DockerDriver(Driver):
    name = "docker"

    def __init__(self, config: DockerDriverConfig | None = None) -> None:
        self.config = config or DockerDriverConfig()
        self._docker: aiodocker.Docker | None = None
        self._step_runner: bool | None = None  # whether pods get one (asked once: _runs_steps)

    @property
    def docker(self) -> aiodocker.Docker:
        if self._docker is None:
            raise RuntimeError("DockerDriver.setup() was not called")
        return self._docker

    async def setup(self) -> None:
        if self._docker is None:
            self._docker = aiodocker.Docker(url=self.config.docker_url)

    async def close(self) -> None:
        if self._docker is not None:
            await self._docker.close()
            self._docker = None

    def archs(self) -> list[str]:
        return [host_arch()]

    @property
    def io_base(self) -> Path:
        return Path(self.config.io_dir or os.path.join(tempfile.gettempdir(), f"agola-executor-io-{os.geteuid()}"))

    def uses_io_dir(self) -> bool:
        """Whether pods get an io dir: the engine must be local (a unix socket) to see it."""
        return not self.config.archive_api_only and self.docker.docker_host.startswith("unix://")

    async def _runs_steps(self) -> bool:
        """Whether container 0's pid 1 may run the steps (``dockerrunner``): the engine must see
        the executor's files as it does (its mount namespace) and must not remap users."""
        if self._step_runner is None:
            path = getattr(self.docker.connector, "path", None)  # aiodocker's UnixConnector
            shared = isinstance(path, str) and await asyncio.to_thread(shares_mounts, path)
            self._step_runner = shared and not await root_remapped(self.docker)
        return self._step_runner

    # ------------------------------------------------------------------------------ pod creation

    async def create_pod(self, spec: PodSpec, out: Sink = discard) -> Pod:
        await self.setup()
        if not spec.containers:
            raise PodSetupError("a pod needs at least one container")
        if any(c.privileged for c in spec.containers) and not self.config.allow_privileged:
            raise PodSetupError(PRIVILEGED_REFUSED)
        if not os.path.isfile(self.config.busybox_path):
            raise PodSetupError(
                f"the executor's static busybox {self.config.busybox_path!r} is missing (install busybox-static)"
            )
        # Container 0's pid 1 creates the working dir when the steps run as its own user, and runs
        # them itself when the pod sees its io dir (dockerrunner).
        main = spec.containers[0]
        own_user = main.entrypoint is None and spec.exec_user == main.user
        workdir = spec.working_dir if own_user else ""
        io = IoDir.create(self.io_base, spec.pod_id) if self.uses_io_dir() else None
        steps: StepRunner | None = None
        if io is not None and own_user and await self._runs_steps():
            steps = StepRunner(io)
        created: list[aiodocker.containers.DockerContainer] = []
        probe: asyncio.Task[str | None] | None = None
        try:
            c0 = await self._create(self._container_config(spec, 0, main, "", workdir, io, steps), main.image,
                                    spec.registry_auth, out)
            created.append(c0)
            if steps is not None:
                steps.start(functools.partial(_container_pid, c0))
            await c0.start()
            if steps is not None:
                steps.started()
            if workdir:
                read = steps.workdir() if steps is not None else read_workdir(self.docker, c0.id)
                probe = asyncio.create_task(read, name=f"pod-workdir-{spec.pod_id}")
            # Service containers only depend on container 0 (its network namespace): all at once.
            services = await asyncio.gather(
                *(self._create_and_start(spec, index, c, c0.id, out)
                  for index, c in enumerate(spec.containers) if index > 0),
                return_exceptions=True,
            )
            created.extend(c for c in services if not isinstance(c, BaseException))
            for failure in services:
                if isinstance(failure, BaseException):
                    raise failure
        except DockerError as exc:
            await self._abandon(created, probe, steps)
            raise PodSetupError(f"cannot start container {len(created)}: {exc.message}") from exc
        except BaseException:
            await self._abandon(created, probe, steps)
            raise
        return DockerPod(self, spec, created, workdir_probe=(workdir, probe) if probe is not None else None,
                         runner=steps)

    async def _create_and_start(
        self, spec: PodSpec, index: int, c: ContainerSpec, main_id: str, out: Sink
    ) -> aiodocker.containers.DockerContainer:
        container = await self._create(self._container_config(spec, index, c, main_id), c.image, {}, out)
        try:
            await container.start()
        except BaseException:
            await self._remove_containers([container])
            raise
        return container

    async def _create(
        self, config: dict[str, Any], image: str, auths: Mapping[str, RegistryCredentials], out: Sink
    ) -> aiodocker.containers.DockerContainer:
        """Create a container; the image is pulled only when the engine says it has none (no
        inspect round trip per task for the images already there)."""
        try:
            return await self._create_one(config)
        except DockerError as exc:
            if exc.status != 404:
                raise
        await self._ensure_image(image, auths, out)
        return await self._create_one(config)

    async def _create_one(self, config: dict[str, Any]) -> aiodocker.containers.DockerContainer:
        """``POST /containers/create``; cancelled while the engine creates it (an executor stopping
        during a pod setup), the container is still removed instead of left in "created"."""
        request = asyncio.ensure_future(self.docker.containers.create(config))
        try:
            return await asyncio.shield(request)
        except asyncio.CancelledError:
            try:
                async with asyncio.timeout(CREATE_CLEANUP_TIMEOUT):
                    container = await request
                    await self._remove_containers([container])
            except (TimeoutError, DockerError, aiohttp.ClientError, OSError):  # the cancellation is raised below
                pass  # never created, or left to the orphan sweep (its labels name this executor)
            raise

    async def _abandon(
        self, created: list[aiodocker.containers.DockerContainer], probe: asyncio.Task[str | None] | None,
        steps: StepRunner | None,
    ) -> None:
        if probe is not None:
            await cancel_and_wait([probe])
        if steps is not None:
            steps.close()
        await self._remove_containers(created[1:] + created[:1])  # services first: they use its netns

    def _container_config(
        self, spec: PodSpec, index: int, c: ContainerSpec, main_id: str, workdir: str = "", io: IoDir | None = None,
        steps: StepRunner | None = None,
    ) -> dict[str, Any]:
        labels = {
            **spec.labels,
            LABEL_AGOLA: "true",
            LABEL_EXECUTOR_ID: spec.executor_id,
            LABEL_POD_ID: spec.pod_id,
            LABEL_TASK_ID: spec.task_id,
            LABEL_CONTAINER_INDEX: str(index),
        }
        host_config: dict[str, Any] = {
            "Privileged": c.privileged,
            "Mounts": [
                {"Type": "tmpfs", "Target": v.path, "TmpfsOptions": {"SizeBytes": v.size} if v.size else {}}
                for v in c.tmpfs
            ],
        }
        config: dict[str, Any] = {
            "Image": c.image,
            "Env": [f"{k}={v}" for k, v in c.env.items()],
            "Labels": labels,
            "User": c.user,
            "Tty": False,
            "HostConfig": host_config,
        }
        entrypoint = c.entrypoint
        if index == 0:
            host_config["Binds"] = [f"{self.config.busybox_path}:{BUSYBOX}:ro"]
            if io is not None:
                host_config["Binds"].append(f"{io.host}:{POD_IO_DIR}:rw")
            host_config["Mounts"].append(
                {"Type": "tmpfs", "Target": SCRIPT_DIR, "TmpfsOptions": {"SizeBytes": SCRIPT_TMPFS_SIZE, "Mode": 0o1777}}
            )
            if self.config.network:
                host_config["NetworkMode"] = self.config.network
            if entrypoint is None:
                entrypoint = runner(workdir, *steps.names) if steps is not None else sleeper(workdir)
                config.update(STDIN_CONFIG)
        else:
            host_config["NetworkMode"] = f"container:{main_id}"
        if entrypoint is not None:
            config["Entrypoint"] = list(entrypoint)
            config["Cmd"] = list(c.cmd or ())
        elif c.cmd is not None:
            config["Cmd"] = list(c.cmd)
        return config

    async def _ensure_image(self, image: str, auths: Mapping[str, RegistryCredentials], out: Sink) -> None:
        try:
            await self.docker.images.inspect(image)
            return
        except DockerError as exc:
            if exc.status != 404:
                raise PodSetupError(f"cannot inspect image {image!r}: {exc.message}") from exc
        await out(f"Pulling image {image}\n".encode())
        headers = {}
        creds = find_registry_auth(image, auths)
        if creds is not None:
            headers["X-Registry-Auth"] = _registry_auth_header(image, creds)
        name, tag = _split_tag(image)
        try:
            async with self.docker._query(
                "images/create", "POST", params={"fromImage": name, "tag": tag}, headers=headers, timeout=None
            ) as response:
                async for item in json_stream_stream(response):
                    if item.get("error"):
                        raise PodSetupError(f"cannot pull image {image!r}: {item['error']}")
                    line = " ".join(str(item[k]) for k in ("id", "status", "progress") if item.get(k))
                    await out(line.encode() + b"\n")
        except DockerError as exc:
            raise PodSetupError(f"cannot pull image {image!r}: {exc.message}") from exc

    # ---------------------------------------------------------------------------- pod discovery

    async def _containers(self, label: str) -> list[aiodocker.containers.DockerContainer]:
        return await self.docker.containers.list(all=True, filters=json.dumps({"label": [label]}))

    async def list_pods(self, executor_id: str | None = None) -> list[PodInfo]:
        await self.setup()
        label = f"{LABEL_EXECUTOR_ID}={executor_id}" if executor_id else f"{LABEL_AGOLA}=true"
        pods: dict[str, dict[str, Any]] = {}
        for c in await self._containers(label):
            labels = _labels(c)
            pod_id = labels.get(LABEL_POD_ID, "")
            pod = pods.setdefault(pod_id, {"task_id": "", "executor_id": labels.get(LABEL_EXECUTOR_ID, ""), "running": False})
            if labels.get(LABEL_CONTAINER_INDEX) == "0" or not pod["task_id"]:
                pod["task_id"] = labels.get(LABEL_TASK_ID, "")
            pod["running"] = pod["running"] or _field(c, "State") == "running"
        return [PodInfo(pod_id=pid, **fields) for pid, fields in pods.items()]

    async def remove_pod(self, pod_id: str) -> None:
        await self.setup()
        containers = await self._containers(f"{LABEL_POD_ID}={pod_id}")
        containers.sort(key=lambda c: int(_labels(c).get(LABEL_CONTAINER_INDEX, "0") or 0))
        await self.remove_known_pod(pod_id, containers, end_main=False)

    async def remove_known_pod(
        self, pod_id: str, containers: list[aiodocker.containers.DockerContainer], *, end_main: bool,
        steps: StepRunner | None = None,
    ) -> None:
        """Remove a pod whose containers are known (in index order: no listing); with
        ``end_main``, container 0 (the sleeper, or the step runner ``steps``) first ends by itself
        instead of being killed (``dockerend``)."""
        await self._remove_containers(containers[:0:-1])  # services first: they use its netns
        if end_main and steps is not None and await steps.hello() is not None:
            if steps.request_exit():  # else it still runs a command: the delete below kills it
                await end_by_itself(self.docker, containers[0].id, close_stdin=False)
        elif end_main:  # the sleeper (or a runner that never started): else the delete kills it
            await end_by_itself(self.docker, containers[0].id)
        if steps is not None:
            steps.close()
        await self._remove_containers(containers[:1])
        if self.uses_io_dir():
            await asyncio.to_thread(IoDir.remove, self.io_base, pod_id)

    async def remove_orphans(self, executor_id: str, active_task_ids: set[str]) -> list[str]:
        removed = await super().remove_orphans(executor_id, active_task_ids)
        if self.uses_io_dir():
            # io dirs of pods that never got a container (a failed pull) or lost them.
            live = {pod.pod_id for pod in await self.list_pods()}
            await asyncio.to_thread(IoDir.sweep, self.io_base, live)
        return removed

    async def _remove_containers(self, containers: list[aiodocker.containers.DockerContainer]) -> None:
        for c in containers:
            try:
                await c.delete(force=True)
            except DockerError as exc:
                if exc.status not in (404, 409):
                    log.warning("cannot remove container", container=c.id, error=exc.message)


async def _container_pid(container: aiodocker.containers.DockerContainer) -> int:
    try:
        pid = (await container.show()).get("State", {}).get("Pid")
    except (DockerError, aiohttp.ClientError) as exc:
        raise ValueError(f"cannot inspect container {container.id[:12]}: {exc}") from exc
    if not isinstance(pid, int) or pid <= 0:
        raise ValueError(f"the engine gives no pid for container {container.id[:12]}")
    return pid


def _field(container: aiodocker.containers.DockerContainer, key: str) -> Any:
    """A field of a container as listed (``GET /containers/json``)."""
    try:
        return container[key]
    except KeyError:
        return None


def _labels(container: aiodocker.containers.DockerContainer) -> dict[str, str]:
    return _field(container, "Labels") or {}


def _split_tag(image: str) -> tuple[str, str]:
    if "@" in image:
        return image, ""
    name, sep, tag = image.rpartition(":")
    if sep and "/" not in tag:
        return name, tag
    return image, "latest"


__all__ = [
    "PRIVILEGED_REFUSED",
    "DockerDriver",
    "DockerDriverConfig",
    "DockerPod",
    "find_registry_auth",
    "image_registry",
    "split_entrypoint",
]
