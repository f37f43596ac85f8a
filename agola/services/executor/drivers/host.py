"""The host driver: a "pod" is a directory on the executor host, commands are subprocesses.

WARNING: a task run by this driver runs **untrusted code with the executor's own rights** on the
executor host: no container, no isolation, full network access, and absolute paths are host paths.
Use it only for trusted repositories (fast local runs, machines without a container engine).

A pod directory ``<base>/<pod id>/`` holds ``home/`` (the task's ``$HOME``, so ``~/project`` lands
there), ``.agola/tmp/`` for step scripts and ``pod.json`` (its labels, to find orphans). Steps keep
their semantics: the environment is a minimal one (``PATH`` of the executor, ``HOME``, ``TMPDIR``)
plus the container, task and step environments, never the executor's own. The driver refuses what
it cannot honour with a setup error: more than one container, ``privileged``, and any ``user``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path

import attrs

from agola.errors import BadRequest, NotExist
from agola.services.executor.drivers.base import (
    Driver,
    Pod,
    PodInfo,
    PodSetupError,
    PodSpec,
    Sink,
    discard,
    host_arch,
)
from agola.util import tarsafe

CHUNK = 64 * 1024
OUTPUT_GRACE = 2.0  # seconds to drain output after the command exits


@attrs.frozen
class HostDriverConfig:
    base_dir: Path


class HostPod(Pod):
    def __init__(self, driver: HostDriver, root: Path, spec: PodSpec) -> None:
        self._driver = driver
        self.root = root
        self.id = spec.pod_id
        self.task_id = spec.task_id
        self.executor_id = spec.executor_id
        self.home = root / "home"
        self._base_env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(self.home),
            "TMPDIR": str(root / "tmp"),
            "LANG": "C.UTF-8",
            **spec.containers[0].env,
        }
        self._procs: set[asyncio.subprocess.Process] = set()
        self._groups: set[int] = set()
        self._stopped = False

    @property
    def script_dir(self) -> str:
        return str(self.root / ".agola" / "tmp")

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
        if user:
            raise PodSetupError("the host driver cannot run commands as another user")
        if self._stopped:
            return 137
        try:
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                env={**self._base_env, **(env or {})},
                cwd=working_dir or str(self.home),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT if (tty or stderr is None) else asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group: stop() kills the whole tree
            )
        except FileNotFoundError as exc:
            await stdout(f"exec failed: {exc}\n".encode())
            return 127
        except (PermissionError, NotADirectoryError, OSError) as exc:
            await stdout(f"exec failed: {exc}\n".encode())
            return 126
        self._procs.add(proc)
        # Recorded on disk so that an executor restarted after a crash can kill what is left.
        pid_file = self.root / "pids" / str(proc.pid)
        pid_file.write_text(str(proc.pid))
        pumps = [asyncio.ensure_future(_pump(proc.stdout, stdout))]
        if proc.stderr is not None and stderr is not None:
            pumps.append(asyncio.ensure_future(_pump(proc.stderr, stderr)))
        try:
            return await _wait_exit(proc, pumps)
        except BaseException:
            for pump in pumps:
                pump.cancel()
            _kill(proc)
            await proc.wait()
            raise
        finally:
            self._procs.discard(proc)
            if _group_alive(proc.pid):
                self._groups.add(proc.pid)  # background children: killed when the pod goes
            else:
                pid_file.unlink(missing_ok=True)

    async def put_archive(self, dest_dir: str, archive: Path, *, user: str = "") -> None:
        def extract() -> None:
            with open(archive, "rb") as f:
                # Links to outside are created as links, never written through (see tarsafe).
                tarsafe.extract(f, dest_dir, overwrite=True, external_links=True)

        await asyncio.to_thread(extract)

    async def get_archive(self, path: str) -> AsyncIterator[bytes]:
        src = Path(path)
        if not src.is_dir():
            raise NotExist(f"{path!r} does not exist or is not a directory")
        tmp = self.root / "tmp" / f"get-{os.urandom(6).hex()}.tar"

        def create() -> None:
            with open(tmp, "wb") as f:
                tarsafe.create(src, f, arc_prefix=src.name or "root")

        try:
            await asyncio.to_thread(create)
            with open(tmp, "rb") as f:
                while data := await asyncio.to_thread(f.read, 256 * 1024):
                    yield data
        finally:
            tmp.unlink(missing_ok=True)

    async def home_dir(self, user: str = "") -> str:
        return str(self.home)

    async def mkdir(self, path: str, user: str = "") -> None:
        try:
            os.makedirs(path, 0o755, exist_ok=True)
        except OSError as exc:
            raise BadRequest(f"mkdir {path}: {exc.strerror}") from exc

    async def file_digest(self, path: str, algo: str, *, working_dir: str = "", user: str = "") -> str:
        full = os.path.join(working_dir or str(self.home), path)

        def digest() -> str:
            h = hashlib.new(algo)
            with open(full, "rb") as f:
                while data := f.read(CHUNK):
                    h.update(data)
            return h.hexdigest()

        try:
            return await asyncio.to_thread(digest)
        except OSError as exc:
            raise NotExist(f"cannot read {path!r}: {exc.strerror}") from exc

    async def has_executable(self, path: str) -> bool:
        found = shutil.which(path, path=self._base_env["PATH"]) if "/" not in path else path
        return found is not None and os.path.isfile(found) and os.access(found, os.X_OK)

    async def stop(self) -> None:
        self._stopped = True
        for proc in list(self._procs):
            _kill(proc)
        for pgid in list(self._groups):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._groups.clear()

    async def remove(self) -> None:
        await self._driver.remove_pod(self.id)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


async def _wait_exit(proc: asyncio.subprocess.Process, pumps: Sequence[asyncio.Future[None]]) -> int:
    """The exit code once the command has exited and its output is drained.

    asyncio's ``proc.wait()`` also waits for the pipes to close, and a background child the step
    left running (``server &``) may hold them open forever. So: the output ending is the usual
    signal; if the pipes stay open after the command exited, drain for a grace period and go on.
    """
    while True:
        done, _ = await asyncio.wait(pumps, timeout=0.05)
        if len(done) == len(pumps):
            return await proc.wait()
        if proc.returncode is not None:
            break
    _, pending = await asyncio.wait(pumps, timeout=OUTPUT_GRACE)
    for pump in pending:
        pump.cancel()
    transport = getattr(proc, "_transport", None)
    if transport is not None:
        transport.close()  # stop reading the pipes the background child still holds
    return proc.returncode


def _kill_recorded(pids_dir: Path) -> None:
    """Kill the process groups a (possibly previous) executor process started for a pod."""
    if not pids_dir.is_dir():
        return
    for entry in pids_dir.iterdir():
        try:
            os.killpg(int(entry.name), signal.SIGKILL)
        except (ValueError, ProcessLookupError, PermissionError):
            pass
        entry.unlink(missing_ok=True)


async def _pump(stream: asyncio.StreamReader | None, sink: Sink) -> None:
    if stream is None:
        return
    while data := await stream.read(CHUNK):
        await sink(data)


def _rmtree(path: Path) -> None:
    # Tasks may leave read-only dirs behind: make them writable so the tree can go.
    def onerror(func: Callable[[str], object], p: str, _exc: object) -> None:
        try:
            os.chmod(os.path.dirname(p), 0o700)
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=onerror)


class HostDriver(Driver):
    """Runs tasks as subprocesses of the executor (see the module warning)."""

    name = "host"

    def __init__(self, config: HostDriverConfig) -> None:
        self.config = config
        self._pods: dict[str, HostPod] = {}

    def archs(self) -> list[str]:
        return [host_arch()]

    async def create_pod(self, spec: PodSpec, out: Sink = discard) -> Pod:
        if len(spec.containers) != 1:
            raise PodSetupError("the host driver runs a single container: service containers are not supported")
        main = spec.containers[0]
        if main.privileged:
            raise PodSetupError("the host driver cannot run privileged containers")
        if main.user or spec.exec_user:
            raise PodSetupError("the host driver cannot run steps as another user (remove `user`)")
        if main.tmpfs:
            raise PodSetupError("the host driver does not support tmpfs volumes")
        root = self.config.base_dir / spec.pod_id
        for sub in ("home", "tmp", ".agola/tmp", "pids"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "pod.json").write_text(
            json.dumps({"pod_id": spec.pod_id, "task_id": spec.task_id, "executor_id": spec.executor_id})
        )
        await out(f"host driver: image {main.image!r} is not used, steps run on the executor host\n".encode())
        pod = HostPod(self, root, spec)
        self._pods[spec.pod_id] = pod
        return pod

    async def list_pods(self, executor_id: str | None = None) -> list[PodInfo]:
        pods: list[PodInfo] = []
        if not self.config.base_dir.is_dir():
            return pods
        for entry in self.config.base_dir.iterdir():
            try:
                meta = json.loads((entry / "pod.json").read_text())
            except (OSError, ValueError):
                continue
            if executor_id and meta.get("executor_id") != executor_id:
                continue
            pods.append(
                PodInfo(
                    pod_id=meta["pod_id"], task_id=meta.get("task_id", ""),
                    executor_id=meta.get("executor_id", ""), running=meta["pod_id"] in self._pods,
                )
            )
        return pods

    async def remove_pod(self, pod_id: str) -> None:
        pod = self._pods.pop(pod_id, None)
        if pod is not None:
            await pod.stop()
        root = self.config.base_dir / pod_id
        _kill_recorded(root / "pids")
        if root.exists():
            await asyncio.to_thread(_rmtree, root)
