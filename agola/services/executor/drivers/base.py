"""The executor driver interface: a driver creates *pods*, a pod runs commands and moves files.

A pod is the runtime of one task. For the Docker driver it is container 0 (where every step runs)
plus service containers sharing its network namespace; for the host driver it is a directory and
subprocesses. The task runner (``agola.services.executor.steps``) only talks to this interface, so
both drivers get the same step semantics.

File transfer is by tar archives on disk: ``put_archive`` extracts a local tar file into the pod
and ``get_archive`` streams a tar of a pod directory. What comes out of a pod is untrusted: the
caller filters it with ``agola.util.tarsafe`` before storing or extracting it anywhere.
"""

from __future__ import annotations

import abc
import asyncio
import io
import platform
import posixpath
import tarfile
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import TypeVar

import attrs

from agola.errors import AgolaError
from agola.util import tarsafe, tarstream

# Where output goes: an async callable taking each chunk as it is produced (e.g. LogFile.write).
Sink = Callable[[bytes], Awaitable[None]]
# Writes a tar stream to its first argument, every entry owned by the (uid, gid) of the second
# (see Pod.write_archive); runs in a worker thread.
Producer = Callable[[tarstream.Writable, tuple[int, int]], object]
T = TypeVar("T")

LABEL_AGOLA = "agola.io/agola"
LABEL_EXECUTOR_ID = "agola.io/executorid"
LABEL_POD_ID = "agola.io/podid"
LABEL_TASK_ID = "agola.io/taskid"
LABEL_CONTAINER_INDEX = "agola.io/containerindex"


_ARCHS = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm", "i686": "386"}


def host_arch() -> str:
    """This machine's architecture, named as the reference does (amd64, arm64, arm, 386)."""
    machine = platform.machine().lower()
    return _ARCHS.get(machine, machine)


def split_entrypoint(entrypoint: str) -> tuple[str, ...] | None:
    """The reference splits a container entrypoint on single spaces."""
    if not entrypoint:
        return None
    return tuple(part for part in entrypoint.split(" ") if part)


class PodSetupError(AgolaError):
    """The pod cannot be created as asked (privileged refused, image missing, bad volume...).

    The message is written to the task's setup log as is, so it must be clear and secret-free.
    """

    status = 400
    code = "pod_setup_error"


async def discard(_: bytes) -> None:
    """A sink that drops everything."""


@attrs.frozen
class TmpfsMount:
    path: str
    size: int = 0  # bytes; 0 = the engine's default


@attrs.frozen
class RegistryCredentials:
    """Credentials for one registry host, already resolved (username/password or base64 auth)."""

    username: str = ""
    password: str = attrs.field(default="", repr=False)
    auth: str = attrs.field(default="", repr=False)  # base64 "user:pass" (the reference's "encodedauth")


@attrs.frozen
class ContainerSpec:
    image: str
    env: Mapping[str, str] = attrs.field(factory=dict, repr=lambda env: f"<{len(env)} variables>")
    # None: the driver's default (container 0: the keep-alive sleeper; others: the image's own).
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    user: str = ""
    privileged: bool = False
    tmpfs: tuple[TmpfsMount, ...] = ()


@attrs.frozen
class PodSpec:
    task_id: str
    executor_id: str
    containers: tuple[ContainerSpec, ...]
    pod_id: str = attrs.field(factory=lambda: str(uuid.uuid4()))
    labels: Mapping[str, str] = attrs.field(factory=dict)
    # registry host -> credentials; used when an image of that registry must be pulled.
    registry_auth: Mapping[str, RegistryCredentials] = attrs.field(factory=dict)
    arch: str = ""
    # The user steps will exec as (drivers that cannot switch users refuse a non-empty one).
    exec_user: str = ""
    # The task's working dir (``~/...`` or absolute): a driver may create it while it starts the
    # pod, so that ``Pod.make_working_dir`` then costs nothing.
    working_dir: str = ""


@attrs.frozen
class PodInfo:
    """A pod as found by ``Driver.list_pods`` (possibly left over by a previous executor run)."""

    pod_id: str
    task_id: str
    executor_id: str
    running: bool = True


class Pod(abc.ABC):
    """One task's runtime. All commands run in the main container (container 0)."""

    id: str
    task_id: str
    executor_id: str

    @abc.abstractmethod
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
        """Run ``cmd`` to completion and return its exit code.

        ``env`` is added to the container environment; ``stderr=None`` sends stderr to ``stdout``;
        with ``tty`` the streams are merged. Output is delivered chunk by chunk as produced.
        A command that cannot be started returns 126/127 with the reason written to ``stdout``.
        """

    @abc.abstractmethod
    async def put_archive(self, dest_dir: str, archive: Path, *, user: str = "") -> None:
        """Extract the tar file ``archive`` into ``dest_dir`` (absolute; created if missing).

        Existing files are replaced. ``user`` owns the directories created for ``dest_dir``.
        """

    @abc.abstractmethod
    def get_archive(self, path: str) -> AsyncIterator[bytes]:
        """Stream a tar of directory ``path``, entries named ``<basename>/...`` like ``docker cp``.

        Raises ``agola.errors.NotExist`` when ``path`` does not exist.
        """

    async def read_archive(self, path: str, consume: Callable[[tarstream.Readable], T]) -> T:
        """``consume(reader)``, in a worker thread, on the tar stream ``get_archive(path)`` gives;
        raises what ``get_archive`` raises. A driver may give a faster stream (the Docker pod's
        io dir)."""
        return await tarsafe.read_async(self.get_archive(path), consume)

    async def write_archive(self, dest_dir: str, produce: Producer, *, user: str = "", tmp_dir: Path) -> None:
        """``put_archive`` of the tar ``produce(out, owner)`` writes in a worker thread (through a
        file in ``tmp_dir`` unless the driver streams it); ``owner`` is what the entries' headers
        must say for ``user`` to own the files ((0, 0) when the driver sets ownership itself)."""
        with tempfile.NamedTemporaryFile(dir=tmp_dir, prefix="put-", suffix=".tar") as f:
            await asyncio.to_thread(produce, f, (0, 0))
            f.flush()
            await self.put_archive(dest_dir, Path(f.name), user=user)

    @abc.abstractmethod
    async def home_dir(self, user: str = "") -> str:
        """The home directory of ``user`` in the pod (used to expand ``~``)."""

    @abc.abstractmethod
    async def mkdir(self, path: str, user: str = "") -> None:
        """``mkdir -p`` as ``user``. Raises ``agola.errors.BadRequest`` with the reason on failure."""

    async def make_working_dir(self, path: str, user: str = "") -> str:
        """Expand ``~`` (``user``'s home) in ``path``, ``mkdir -p`` it as ``user``; returns the path.

        Relative paths are relative to ``/``. Drivers may override this to do it in one round trip.
        """
        if path == "~" or path.startswith("~/"):
            path = (await self.home_dir(user)).rstrip("/") + path[1:]
        path = posixpath.normpath(posixpath.join("/", path))
        await self.mkdir(path, user)
        return path

    @abc.abstractmethod
    async def file_digest(self, path: str, algo: str, *, working_dir: str = "", user: str = "") -> str:
        """Hex ``md5``/``sha256`` of a pod file (relative to ``working_dir``); NotExist if missing."""

    @abc.abstractmethod
    async def has_executable(self, path: str) -> bool:
        """Whether ``path`` is an executable file in the pod."""

    @property
    @abc.abstractmethod
    def script_dir(self) -> str:
        """A pod directory, writable and readable by any user, where step scripts are written."""

    async def write_file(self, dest_dir: str, name: str, data: bytes, mode: int = 0o644) -> str:
        """Write one file into an existing pod directory; returns its path."""
        with tempfile.TemporaryDirectory(prefix="agola-file-") as tmp:
            archive = Path(tmp) / "file.tar"
            with tarfile.open(archive, "w") as tar:
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), mode, int(time.time())
                tar.addfile(info, io.BytesIO(data))
            await self.put_archive(dest_dir, archive)
        return posixpath.join(dest_dir, name)

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
        """Write ``script`` as ``<script_dir>/<name>`` and run ``shell + [path]`` (a run step)."""
        path = await self.write_file(self.script_dir, name, script)
        return await self.exec(shell + [path], env=env, working_dir=working_dir, user=user, tty=tty, stdout=stdout)

    def fallback_shell(self) -> list[str] | None:
        """A shell the executor provides when the image has none (None: no fallback)."""
        return None

    @abc.abstractmethod
    async def stop(self) -> None:
        """Kill everything running in the pod now (a running exec returns promptly)."""

    @abc.abstractmethod
    async def remove(self) -> None:
        """Stop and delete the pod and its resources. Idempotent."""


class Driver(abc.ABC):
    """Creates pods and finds the ones it (or a previous run of this executor) left behind."""

    name: str = ""

    async def setup(self) -> None:
        """Prepare the driver (connect, check helpers). Called once before use."""

    async def close(self) -> None:
        """Release the driver's resources (does not remove pods)."""

    @abc.abstractmethod
    def archs(self) -> list[str]:
        """The architectures this driver can run (reference names: amd64, arm64, ...)."""

    @abc.abstractmethod
    async def create_pod(self, spec: PodSpec, out: Sink = discard) -> Pod:
        """Create and start a pod; progress (e.g. image pulls) goes to ``out``.

        Raises ``PodSetupError`` with a user-facing message when the spec cannot be honoured.
        """

    @abc.abstractmethod
    async def list_pods(self, executor_id: str | None = None) -> list[PodInfo]:
        """All pods of ``executor_id`` (all agola pods when None), running or not."""

    @abc.abstractmethod
    async def remove_pod(self, pod_id: str) -> None:
        """Remove a pod by id (as listed). Idempotent."""

    async def remove_orphans(self, executor_id: str, active_task_ids: set[str]) -> list[str]:
        """Remove this executor's pods whose task is not active; returns the removed pod ids."""
        removed = []
        for info in await self.list_pods(executor_id):
            if info.task_id not in active_task_ids:
                await self.remove_pod(info.pod_id)
                removed.append(info.pod_id)
        return removed
