"""A Docker pod: container 0 (where every step runs) plus service containers in its netns.

Layout inside container 0: the host's static busybox at ``/.agola/bin/busybox`` (every helper
command runs with it, so any image works), a small tmpfs at ``/.agola/tmp`` for step scripts, the
pod's io dir at ``/.agola/io`` (``dockerio``). Commands run through container 0's pid 1 when it
is the step runner (``dockerrunner``), else through ``docker exec``; files go in and out as tar
streams through FIFOs in the io dir, or with the archive API when the pod cannot use it.
Created by ``agola.services.executor.drivers.docker.DockerDriver``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import posixpath
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import aiodocker
from aiodocker.exceptions import DockerError

from agola.errors import BadRequest, NotExist
from agola.services.executor.drivers import dockerio
from agola.services.executor.drivers.base import Pod, PodSpec, Producer, Sink, discard
from agola.services.executor.drivers.dockerrunner import RunnerUnavailable, StepRunner
from agola.services.executor.drivers.dockerstart import BUSYBOX, HELPER_DIR, workdir_args
from agola.services.executor.drivers.dockerstream import open_exec_stream
from agola.util import tarsafe, tarstream

if TYPE_CHECKING:
    from agola.services.executor.drivers.docker import DockerDriver

T = TypeVar("T")

SCRIPT_DIR = f"{HELPER_DIR}/tmp"  # a small tmpfs, mode 1777, in container 0
SCRIPT_TMPFS_SIZE = 16 << 20
INLINE_SCRIPT_MAX = 64 * 1024
PRIVILEGED_REFUSED = "Executor doesn't allow executing privileged containers."
ROOT_USERS = frozenset({"0", "root", "0:0", "root:root", "root:0", "0:root"})


class DockerPod(Pod):
    def __init__(
        self,
        driver: DockerDriver,
        spec: PodSpec,
        containers: list[aiodocker.containers.DockerContainer],
        *,
        workdir_probe: tuple[str, asyncio.Task[str | None]] | None = None,
        runner: StepRunner | None = None,
    ) -> None:
        self._driver = driver
        self._docker = driver.docker
        self.id = spec.pod_id
        self.task_id = spec.task_id
        self.executor_id = spec.executor_id
        self.containers = containers
        self.main = containers[0]
        self._ids: dict[str, tuple[int, int]] = {}
        self._homes: dict[str, str] = {}
        self._io = dockerio.IoDir(driver.io_base / spec.pod_id) if driver.uses_io_dir() else None
        self._io_usable: bool | None = None  # checked on first use (dockerio.io_visible)
        # (working dir asked, container 0's report of it): see dockerstart.
        self._workdir_probe = workdir_probe
        self._workdir_user = spec.exec_user
        # Container 0's pid 1 is the sleeper: at the end it exits when told (dockerend), unless killed.
        self._ends_itself = spec.containers[0].entrypoint is None
        # ... or the step runner: commands of container 0's user (or root) go through it.
        self._runner = runner
        self._main_user = spec.containers[0].user

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
        runner = await self._runner_for(user, env, tty)
        if runner is not None and len(script) <= INLINE_SCRIPT_MAX and b"\0" not in script:
            path = f"{SCRIPT_DIR}/{name}"
            try:
                return await runner.run(shell + [path], env=env or {}, working_dir=working_dir, tty=tty,
                                        stdout=stdout, stderr=None, script=(path, script))
            except RunnerUnavailable:
                pass  # through docker exec below
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
        runner = await self._runner_for(user, env, tty)
        if runner is not None:
            try:
                return await runner.run(cmd, env=env or {}, working_dir=working_dir, tty=tty, stdout=stdout,
                                        stderr=stderr)
            except RunnerUnavailable:
                pass  # through docker exec below
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

    async def _runner_for(self, user: str, env: Mapping[str, str] | None, tty: bool) -> StepRunner | None:
        """The step runner when this command can go through it (``dockerrunner``), else None."""
        if self._runner is None:
            return None
        if user in ("", self._main_user):
            root = False
        elif user in ROOT_USERS:
            root = True
        else:
            return None
        if await self._runner.hello() is None:
            return None
        return self._runner if self._runner.accepts(root=root, env=env or {}, tty=tty) else None

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
            rc, out = await self._capture(  # as root: the container's own user may be this user
                [BUSYBOX, "sh", "-c", f'{BUSYBOX} mkdir -p "$1" && {BUSYBOX} chown {uid}:{gid} "$1"', "sh", path],
                user="0",
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
        created = await self._startup_workdir(path, user)
        if created is not None:
            return created
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

    async def _startup_workdir(self, path: str, user: str) -> str | None:
        """The working dir container 0's pid 1 created at start (no exec), if it is this one."""
        probe, self._workdir_probe = self._workdir_probe, None
        if probe is None or probe[0] != path or user != self._workdir_user:
            if probe is not None:
                probe[1].cancel()
            return None
        created = await probe[1]
        if created is None:
            return None
        mode, rest = workdir_args(path)
        if mode == "~":
            # created is "$HOME" + rest: keep $HOME, so home_dir() needs no exec of its own.
            if not created.endswith(rest):
                return None
            home = created[: len(created) - len(rest)] if rest else created
            self._homes[user] = home if home.startswith("/") else "/"
        return "/" + posixpath.normpath(created).lstrip("/")  # a HOME of "/" gives "//project"

    async def _user_ids(self, user: str) -> tuple[int, int]:
        if user not in self._ids:
            rc, out = await self._capture([BUSYBOX, "sh", "-c", "echo $(id -u) $(id -g)"], user=user)
            parts = out.split()
            if rc != 0 or len(parts) != 2:
                raise BadRequest(f"cannot resolve user {user!r}: {out.decode(errors='replace').strip()}")
            self._ids[user] = (int(parts[0]), int(parts[1]))
        return self._ids[user]

    async def _usable_io(self) -> dockerio.IoDir | None:
        """The pod's io dir when the pod sees it (else archives go through the archive API)."""
        if self._io is None or self._io_usable is False:
            return None
        if self._io_usable is None:
            self._io_usable = await dockerio.io_visible(self._docker, self.main.id)
        return self._io if self._io_usable else None

    async def read_archive(self, path: str, consume: Callable[[tarstream.Readable], T]) -> T:
        io = await self._usable_io()
        if io is not None and posixpath.normpath(path) != "/":
            try:
                return await dockerio.read_tar(self, io, BUSYBOX, path, consume)
            except dockerio.IoUnusable:
                self._io_usable = False
        return await super().read_archive(path, consume)

    async def write_archive(self, dest_dir: str, produce: Producer, *, user: str = "", tmp_dir: Path) -> None:
        owner = await self._user_ids(user) if user else (0, 0)
        io = await self._usable_io()
        if io is not None:
            await dockerio.write_tar(self, io, BUSYBOX, dest_dir, owner, lambda out: produce(out, owner))
            return
        # The archive API keeps the headers' ownership: the tar is written owned by the step user.
        with tempfile.NamedTemporaryFile(dir=tmp_dir, prefix="put-", suffix=".tar") as f:
            await asyncio.to_thread(produce, f, owner)
            f.flush()
            await self._put_archive(dest_dir, Path(f.name), user)

    async def put_archive(self, dest_dir: str, archive: Path, *, user: str = "") -> None:
        if await self._usable_io() is not None:
            def produce(out: tarstream.Writable, owner: tuple[int, int]) -> None:
                with open(archive, "rb") as f:
                    tarsafe.filter_archive(f, out, owner=owner, external_links=True)

            await self.write_archive(dest_dir, produce, user=user, tmp_dir=archive.parent)
            return
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
                f"containers/{self.main.id}/archive", method="GET", params={"path": path},
                # Else dockerd gzips the tar (Go gzip, ~30 MB/s) for aiohttp to gunzip.
                headers={"Accept-Encoding": "identity"},
            ) as response:
                async for chunk in response.content.iter_chunked(256 * 1024):
                    yield chunk
        except DockerError as exc:
            if exc.status == 404:
                raise NotExist(f"{path!r} does not exist in the pod") from exc
            raise

    async def stop(self) -> None:
        self._ends_itself = False
        for container in reversed(self.containers):
            try:
                await container.kill(signal="SIGKILL")
            except DockerError:
                pass  # already stopped or gone

    async def remove(self) -> None:
        probe, self._workdir_probe = self._workdir_probe, None
        if probe is not None:
            probe[1].cancel()
        await self._driver.remove_known_pod(self.id, self.containers, end_main=self._ends_itself,
                                            steps=self._runner)


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
