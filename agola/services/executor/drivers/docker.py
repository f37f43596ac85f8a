"""The Docker driver (aiodocker): a pod is container 0 plus service containers in its netns.

Container 0 must run any image, even one with no shell and no tools. The host's *static* busybox
(Debian's ``busybox-static``, path from config) is bind-mounted read-only at
``/.agola/bin/busybox`` and, unless the task gives container 0 an entrypoint, runs as its pid 1 in
a ``sleep & wait`` loop: ash's ``wait`` reaps every child, including orphans re-parented to pid 1,
so zombies do not pile up. Every helper the executor needs inside the pod (``mkdir -p``, ``$HOME``
lookup, file digests for cache keys) is run with that busybox through ``docker exec``; files go in
and out with the archive API (``put_archive``/``get_archive``), never through the image's tools.

Service containers (index > 0) join container 0's network namespace (``container:<id0>``), so they
are reachable on ``localhost``. Labels identify executor, pod, task and container index.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import posixpath
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiodocker
import attrs
from aiodocker.exceptions import DockerError
from aiodocker.jsonstream import json_stream_stream

from agola.errors import BadRequest, NotExist
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
from agola.services.executor.drivers.dockerstream import open_exec_stream
from agola.util import tarsafe
from agola.util.log import get_logger

log = get_logger(__name__)

HELPER_DIR = "/.agola"
BUSYBOX = f"{HELPER_DIR}/bin/busybox"
SCRIPT_DIR = f"{HELPER_DIR}/tmp"  # a small tmpfs, mode 1777, in container 0
SCRIPT_TMPFS_SIZE = 16 << 20
INLINE_SCRIPT_MAX = 64 * 1024
# pid 1 of container 0: never exits on its own, ignores TERM/INT, reaps zombies in `wait`.
SLEEPER = (BUSYBOX, "sh", "-c", f"trap : TERM INT; while :; do {BUSYBOX} sleep 3600 & wait; done")
PRIVILEGED_REFUSED = "Executor doesn't allow executing privileged containers."


@attrs.frozen
class DockerDriverConfig:
    busybox_path: str = "/usr/bin/busybox"  # a *static* busybox on the Docker host
    network: str = ""  # "" = the engine's default; "none", "host" or a network name
    allow_privileged: bool = False
    docker_url: str | None = None  # None = from the environment (DOCKER_HOST) or the local socket


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


class DockerPod(Pod):
    def __init__(self, driver: DockerDriver, spec: PodSpec, containers: list[aiodocker.containers.DockerContainer]) -> None:
        self._driver = driver
        self._docker = driver.docker
        self.id = spec.pod_id
        self.task_id = spec.task_id
        self.executor_id = spec.executor_id
        self.containers = containers
        self.main = containers[0]
        self._ids: dict[str, tuple[int, int]] = {}
        self._homes: dict[str, str] = {}

    @property
    def script_dir(self) -> str:
        return SCRIPT_DIR

    def fallback_shell(self) -> list[str] | None:
        return [BUSYBOX, "sh", "-e"]

    async def run_script(
        self,
        shell: list[str],
        script: bytes,
        name: str,
        *,
        env: Mapping[str, str] | None = None,
        working_dir: str = "",
        user: str = "",
        tty: bool = False,
        stdout: Sink = discard,
    ) -> int:
        if len(script) > INLINE_SCRIPT_MAX or b"\0" in script:
            # Too big for an argument: copied in as root through the archive API.
            path = await self.write_file(HELPER_DIR, name, script)
            return await self.exec(shell + [path], env=env, working_dir=working_dir, user=user, tty=tty, stdout=stdout)
        # One exec instead of a copy then an exec: busybox writes the script to the pod's tmpfs,
        # then replaces itself with the shell (so exit status and signals are the shell's).
        path = f"{SCRIPT_DIR}/{name}"
        wrapper = [BUSYBOX, "sh", "-c", 'printf "%s" "$1" > "$2" || exit 126; shift 2; exec "$@"', "agola-step",
                   script.decode("utf-8", errors="surrogateescape"), path, *shell, path]
        return await self.exec(wrapper, env=env, working_dir=working_dir, user=user, tty=tty, stdout=stdout)

    async def exec(
        self,
        cmd: list[str],
        *,
        env: Mapping[str, str] | None = None,
        working_dir: str = "",
        user: str = "",
        tty: bool = False,
        stdout: Sink = discard,
        stderr: Sink | None = None,
    ) -> int:
        ex = await self.main.exec(
            cmd, stdout=True, stderr=True, tty=tty, user=user, environment=dict(env or {}), workdir=working_dir or None
        )
        async with await open_exec_stream(ex.start(detach=False)) as stream:
            while (msg := await stream.read_out()) is not None:
                if msg.stream == 2 and stderr is not None:
                    await stderr(msg.data)
                else:
                    await stdout(msg.data)
        return await self._exit_code(ex)

    async def _exit_code(self, ex: Any) -> int:
        # At the end of the output stream the exec may not be marked finished yet.
        delay = 0.005
        for _ in range(200):
            info = await ex.inspect()
            if not info.get("Running") and info.get("ExitCode") is not None:
                return int(info["ExitCode"])
            if not info.get("Running") and not await self._main_running():
                return 137  # the pod was killed under the exec
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
        return -1

    async def _main_running(self) -> bool:
        try:
            data = await self.main.show()
        except DockerError:
            return False
        return bool(data.get("State", {}).get("Running"))

    async def _capture(self, cmd: list[str], *, user: str = "", working_dir: str = "", limit: int = 1 << 20) -> tuple[int, bytes]:
        buf = bytearray()

        async def sink(data: bytes) -> None:
            if len(buf) < limit:
                buf.extend(data[: limit - len(buf)])

        rc = await self.exec(cmd, user=user, working_dir=working_dir, stdout=sink)
        return rc, bytes(buf)

    async def home_dir(self, user: str = "") -> str:
        if user in self._homes:  # found by make_working_dir's exec
            return self._homes[user]
        rc, out = await self._capture([BUSYBOX, "sh", "-c", 'printf %s "$HOME"'], user=user)
        home = out.decode(errors="replace").strip()
        return home if rc == 0 and home.startswith("/") else "/"

    async def mkdir(self, path: str, user: str = "") -> None:
        rc, out = await self._capture([BUSYBOX, "mkdir", "-p", path], user=user)
        if rc != 0 and user:
            # The user may not write the parent (e.g. an image whose HOME is root-owned): create
            # the dir as root and give the user the leaf, so the task can still work there.
            uid, gid = await self._user_ids(user)
            rc, out = await self._capture(
                [BUSYBOX, "sh", "-c", f'{BUSYBOX} mkdir -p "$1" && {BUSYBOX} chown {uid}:{gid} "$1"', "sh", path]
            )
        if rc != 0:
            raise BadRequest(out.decode(errors="replace").strip() or f"mkdir {path} failed with exit code {rc}")

    async def file_digest(self, path: str, algo: str, *, working_dir: str = "", user: str = "") -> str:
        if algo not in ("md5", "sha256"):
            raise BadRequest(f"unsupported digest {algo!r}")
        rc, out = await self._capture([BUSYBOX, f"{algo}sum", path], user=user, working_dir=working_dir)
        text = out.decode(errors="replace").strip()
        if rc != 0:
            raise NotExist(text or f"cannot read {path!r}")
        return text.split()[0]

    async def has_executable(self, path: str) -> bool:
        # A stat through the archive API: no exec, so it costs a few milliseconds.
        try:
            async with self._docker._query(
                f"containers/{self.main.id}/archive", method="HEAD", params={"path": path}
            ) as response:
                raw = response.headers.get("X-Docker-Container-Path-Stat", "")
        except (DockerError, ValueError):  # 404: aiodocker fails to decode the empty HEAD body
            return False
        try:
            mode = int(json.loads(base64.b64decode(raw))["mode"])
        except (ValueError, KeyError, TypeError):
            return False
        is_dir = bool(mode & (1 << 31))  # Go's os.ModeDir
        is_link = bool(mode & (1 << 27))  # os.ModeSymlink: the target is checked by exec itself
        return not is_dir and (is_link or bool(mode & 0o111))

    async def make_working_dir(self, path: str, user: str = "") -> str:
        if not (path == "~" or path.startswith("~/")):
            path = posixpath.normpath(posixpath.join("/", path))
            await self.mkdir(path, user)
            return path
        # One exec for "expand ~ then mkdir -p", as the user (HOME comes from the image's passwd).
        script = f'd="$HOME${{1#\\~}}"; {BUSYBOX} mkdir -p "$d" 2>&1 && printf %s "$d"'
        rc, out = await self._capture([BUSYBOX, "sh", "-c", script, "sh", path], user=user)
        if rc == 0 and out.startswith(b"/"):
            text = out.decode(errors="surrogateescape")
            # d is "$HOME" + the rest of path: keep $HOME, so home_dir() needs no exec of its own.
            rest = path[1:]
            if text.endswith(rest):
                home = text[: len(text) - len(rest)].strip()
                self._homes[user] = home if home.startswith("/") else "/"
            return posixpath.normpath(out.decode())
        return await super().make_working_dir(path, user)  # e.g. a root-owned HOME: mkdir's fallback

    async def _user_ids(self, user: str) -> tuple[int, int]:
        if user not in self._ids:
            rc, out = await self._capture([BUSYBOX, "sh", "-c", "echo $(id -u) $(id -g)"], user=user)
            parts = out.split()
            if rc != 0 or len(parts) != 2:
                raise BadRequest(f"cannot resolve user {user!r}: {out.decode(errors='replace').strip()}")
            self._ids[user] = (int(parts[0]), int(parts[1]))
        return self._ids[user]

    async def put_archive(self, dest_dir: str, archive: Path, *, user: str = "") -> None:
        owner = await self._user_ids(user) if user else (0, 0)
        if owner != (0, 0):
            # Docker keeps the tar headers' ownership: rewrite them so the step user owns its files.
            owned = archive.with_name(archive.name + ".owned")
            await asyncio.to_thread(_rewrite_owner, archive, owned, owner)
            try:
                await self._put_archive(dest_dir, owned, user)
            finally:
                owned.unlink(missing_ok=True)
        else:
            await self._put_archive(dest_dir, archive, user)

    async def _put_archive(self, dest_dir: str, archive: Path, user: str) -> None:
        try:
            await _put_archive(self._docker, self.main.id, dest_dir, archive)
        except DockerError as exc:
            if exc.status != 404:
                raise
            await self.mkdir(dest_dir, user)  # only pay for the mkdir exec when it is missing
            await _put_archive(self._docker, self.main.id, dest_dir, archive)

    async def get_archive(self, path: str) -> AsyncIterator[bytes]:
        try:
            async with self._docker._query(
                f"containers/{self.main.id}/archive", method="GET", params={"path": path}
            ) as response:
                async for chunk in response.content.iter_chunked(256 * 1024):
                    yield chunk
        except DockerError as exc:
            if exc.status == 404:
                raise NotExist(f"{path!r} does not exist in the pod") from exc
            raise

    async def stop(self) -> None:
        for container in reversed(self.containers):
            try:
                await container.kill(signal="SIGKILL")
            except DockerError:
                pass  # already stopped or gone

    async def remove(self) -> None:
        await self._driver.remove_pod(self.id)


def _rewrite_owner(src: Path, dst: Path, owner: tuple[int, int]) -> None:
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        tarsafe.filter_archive(fin, fout, owner=owner, external_links=True)


async def _put_archive(docker: aiodocker.Docker, container_id: str, dest_dir: str, archive: Path) -> None:
    with open(archive, "rb") as body:
        async with docker._query(
            f"containers/{container_id}/archive",
            method="PUT",
            params={"path": dest_dir},
            data=body,
            headers={"Content-Type": "application/x-tar"},
        ):
            pass


class DockerDriver(Driver):
    name = "docker"

    def __init__(self, config: DockerDriverConfig | None = None) -> None:
        self.config = config or DockerDriverConfig()
        self._docker: aiodocker.Docker | None = None

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
        for index, container in enumerate(spec.containers):
            await self._ensure_image(container.image, spec.registry_auth if index == 0 else {}, out)
        created: list[aiodocker.containers.DockerContainer] = []
        try:
            for index, container in enumerate(spec.containers):
                config = self._container_config(spec, index, container, created[0].id if created else "")
                c = await self.docker.containers.create(config)
                created.append(c)
                await c.start()
        except DockerError as exc:
            await self._remove_containers(created)
            raise PodSetupError(f"cannot start container {len(created)}: {exc.message}") from exc
        except BaseException:
            await self._remove_containers(created)
            raise
        return DockerPod(self, spec, created)

    def _container_config(self, spec: PodSpec, index: int, c: ContainerSpec, main_id: str) -> dict[str, Any]:
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
            host_config["Mounts"].append(
                {"Type": "tmpfs", "Target": SCRIPT_DIR, "TmpfsOptions": {"SizeBytes": SCRIPT_TMPFS_SIZE, "Mode": 0o1777}}
            )
            if self.config.network:
                host_config["NetworkMode"] = self.config.network
            if entrypoint is None:
                entrypoint = SLEEPER
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
        # Service containers first: they depend on container 0's network namespace.
        containers.sort(key=lambda c: -int(_labels(c).get(LABEL_CONTAINER_INDEX, "0") or 0))
        await self._remove_containers(containers)

    async def _remove_containers(self, containers: list[aiodocker.containers.DockerContainer]) -> None:
        for c in containers:
            try:
                await c.delete(force=True)
            except DockerError as exc:
                if exc.status not in (404, 409):
                    log.warning("cannot remove container", container=c.id, error=exc.message)


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
