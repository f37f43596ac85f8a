"""Bulk data in and out of container 0 through FIFOs in a host directory (the pod's *io dir*).

The Docker archive API moves a tar through dockerd, its HTTP framing and aiohttp; a FIFO moves it
through the kernel. Each pod has a host directory ``<io base>/<pod id>`` bind-mounted at
``/.agola/io`` in container 0 (``IoDir``). To save a directory, the bind-mounted busybox runs
``tar c`` into a FIFO there and the executor reads the other end; to restore, the executor writes
a (filtered) tar into a FIFO that ``tar x`` reads. The tar itself runs as root in the pod, as the
archive API does. An engine remapping the containers' root to an unprivileged host user
(userns-remap) gets no FIFOs: that root could not open them (``root_remapped``).

The io dir is writable from the container, so nothing in it is trusted: FIFOs are created by the
executor with random names, opened with ``O_NOFOLLOW | O_NONBLOCK`` and checked with ``fstat`` to
be the very FIFO it made (a container replacing it with a link to a host file, or with anything
else, is refused: ``IoRefused``); nothing the container created is ever followed or opened; the
container's tar output goes through ``agola.util.tarsafe`` like any archive.

Waiting never polls on an interval: reads and writes block in ``poll(2)`` on the FIFO and on a
wake-up pipe the event loop writes to when the exec ends or the step is cancelled.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import posixpath
import secrets
import select
import shutil
import stat
import tarfile
import time
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiohttp
from aiodocker.exceptions import DockerError

from agola.errors import BadRequest, NotExist
from agola.util.log import get_logger
from agola.util.privatefiles import private_dir

log = get_logger(__name__)

POD_IO_DIR = "/.agola/io"
MARKER = ".agola-io"  # made by the executor: the pod sees it when the io dir is really shared
PIPE_SIZE = 1 << 20  # the default unprivileged maximum (fs.pipe-max-size)
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_RC_MISSING = 66  # the path to archive does not exist
_RC_NO_FIFO = 67  # the FIFO is not there from the pod's side: the io dir is not shared
_OUTPUT_LIMIT = 4096
_DRAIN_LIMIT = 16 << 20
SWEEP_MIN_AGE = 600.0  # seconds: an image pull may hold a pod between its io dir and its containers

T = TypeVar("T")


class IoRefused(BadRequest):
    """Something in the pod's io dir is not what the executor put there."""


class IoUnusable(Exception):
    """The pod does not see the io dir (e.g. an engine on another host): use the archive API."""


class Execer(Protocol):
    async def exec(self, cmd: list[str], *, user: str = "", stdout: Callable[[bytes], Awaitable[None]] = ...) -> int: ...


# -------------------------------------------------------------------------------------- io dir


class IoDir:
    """A pod's host directory, bind-mounted at ``POD_IO_DIR`` in container 0."""

    def __init__(self, host: Path) -> None:
        self.host = host

    @classmethod
    def create(cls, base: Path, pod_id: str) -> IoDir:
        """Make ``<base>/<pod id>`` (``base`` private to the executor; the pod dir searchable by
        every user of the pod, not listable, so a step user can open a FIFO it is given)."""
        base = private_dir(base)
        st = os.lstat(base)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            raise BadRequest(f"the executor's io dir {str(base)!r} must be a directory of its own")
        host = base / _check_pod_id(pod_id)
        host.mkdir(mode=0o711, exist_ok=True)
        os.chmod(host, 0o711)
        (host / MARKER).touch(mode=0o444)
        return cls(host)

    @staticmethod
    def remove(base: Path, pod_id: str) -> None:
        """Delete a pod's io dir and whatever the pod left in it (links are unlinked, not followed)."""
        shutil.rmtree(Path(base) / _check_pod_id(pod_id), ignore_errors=True)

    @staticmethod
    def sweep(base: Path, live: set[str], min_age: float = SWEEP_MIN_AGE) -> list[str]:
        """Delete the io dirs of pods not in ``live`` and untouched for ``min_age`` seconds (a pod
        being created has its io dir before its containers); returns their pod ids."""
        removed: list[str] = []
        try:
            entries = list(os.scandir(base))
        except FileNotFoundError:
            return removed
        now = time.time()
        for entry in entries:
            if entry.name in live or not entry.is_dir(follow_symlinks=False):
                continue
            if now - entry.stat(follow_symlinks=False).st_mtime < min_age:
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.name)
        return removed

    def pod_path(self, name: str) -> str:
        return posixpath.join(POD_IO_DIR, name)

    def make_fifo(self, prefix: str) -> Fifo:
        """A new FIFO with an unguessable name, readable and writable by root in the pod only."""
        return self.make_fifo_named(f"{prefix}-{secrets.token_hex(8)}")

    def make_fifo_named(self, name: str) -> Fifo:
        """A new FIFO named ``name`` (the caller makes it unguessable); fails if it exists."""
        path = self.host / name
        os.mkfifo(path, 0o600)
        st = os.lstat(path)
        return Fifo(path, self.pod_path(name), st.st_dev, st.st_ino)


def _check_pod_id(pod_id: str) -> str:
    if not pod_id or "/" in pod_id or pod_id in (".", ".."):
        raise BadRequest(f"invalid pod id {pod_id!r}")
    return pod_id


class Fifo:
    """One FIFO of an io dir: opened only if it is still the FIFO the executor created."""

    def __init__(self, host: Path, pod_path: str, dev: int, ino: int) -> None:
        self.host, self.pod_path = host, pod_path
        self._id = (dev, ino)

    def _open(self, flags: int) -> int:
        try:
            fd = os.open(self.host, flags | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise IoRefused(f"the pod replaced the executor's FIFO {self.pod_path} with a symbolic link") from None
            raise IoRefused(f"cannot open the executor's FIFO {self.pod_path}: {exc.strerror}") from None
        st = os.fstat(fd)  # O_PATH | O_NOFOLLOW opens a link itself: this says what it is
        if not stat.S_ISFIFO(st.st_mode) or (st.st_dev, st.st_ino) != self._id:
            os.close(fd)
            kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "another file"
            raise IoRefused(f"the pod replaced the executor's FIFO {self.pod_path} with {kind}")
        return fd

    def open_fd(self, flags: int) -> int:
        """The FIFO opened with ``flags`` (with ``O_NONBLOCK``: never waits), its pipe enlarged."""
        return _sized(self._open(flags))

    def open_reader(self) -> FifoReader:
        return FifoReader(_sized(self._open(os.O_RDONLY | os.O_NONBLOCK)))

    def open_writer(self) -> FifoWriter:
        # An O_PATH handle on the checked FIFO: the write end is opened through it later, in the
        # worker thread (that open waits for the pod's reader), never through the io dir again.
        return FifoWriter(self._open(os.O_PATH))

    def unlink(self) -> None:
        try:
            os.unlink(self.host)  # whatever is there now: unlink never follows a link
        except FileNotFoundError:
            pass


def _sized(fd: int) -> int:
    try:
        fcntl.fcntl(fd, _F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass  # a smaller pipe only means more wake-ups
    return fd


# ------------------------------------------------------------------------------- blocking ends


class _End:
    """A FIFO end used from a worker thread, woken by ``finish``/``cancel`` from the event loop."""

    def __init__(self, events: int) -> None:
        self.fd = -1
        self._events = events
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._poll = select.poll()
        self._poll.register(self._wake_r, select.POLLIN)
        self.finished = False
        self.cancelled = False

    def _use(self, fd: int) -> None:
        self.fd = fd
        self._poll.register(fd, self._events)

    def _wait(self) -> bool:
        """Block until the FIFO is ready (True) or a wake-up came (False)."""
        ready = {fd for fd, _ in self._poll.poll()}
        return self.fd in ready and not (self._wake_r in ready and self.cancelled)

    def _wake(self) -> None:
        if self._wake_w < 0:
            return
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass

    def finish(self) -> None:
        """The pod's side is done (its exec ended): stop waiting for more than what is there."""
        self.finished = True
        self._wake()

    def cancel(self) -> None:
        self.cancelled = True
        self._wake()

    def close_fifo(self) -> None:
        """Close the FIFO end (not while a thread uses it): the pod's side sees end of file or EPIPE."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def close(self) -> None:
        self.close_fifo()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1


class FifoReader(_End):
    """The executor's read end (``read(n)`` for ``tarstream``): end of file when the pod's writer
    closes, or, once ``finish`` was called, when nothing is left to read."""

    def __init__(self, fd: int) -> None:
        super().__init__(select.POLLIN)
        self._use(fd)

    def read(self, n: int = -1) -> bytes:
        size = n if n > 0 else PIPE_SIZE
        while True:
            # Before a writer ever opened the FIFO a read says end of file: wait for readiness
            # first (poll reports a hang-up only after a writer came and went).
            ready = self._wait()
            if self.cancelled:
                raise OSError(errno.ECANCELED, "the transfer was cancelled")
            if not ready and not self.finished:
                continue
            try:
                return os.read(self.fd, size)
            except BlockingIOError:
                if self.finished:
                    return b""  # the writer is gone and nothing is left


class FifoWriter(_End):
    """The executor's write end; its first ``write`` waits for the pod's reader to open the FIFO
    (the end of file the reader gets when this end closes would be lost before that); ``write``
    fails once the pod stopped reading (its exec ended)."""

    def __init__(self, path_fd: int) -> None:
        super().__init__(select.POLLOUT)
        self._path_fd = path_fd
        self._unblock_fd = -1

    def _reopen(self, flags: int) -> int:
        return os.open(f"/proc/self/fd/{self._path_fd}", flags | os.O_CLOEXEC)

    def _open_write_end(self) -> None:
        fd = self._reopen(os.O_WRONLY)  # blocks until a reader (the pod's, or _unblock's) opens
        os.set_blocking(fd, False)
        self._use(_sized(fd))

    def _unblock(self) -> None:
        """Release a thread waiting in ``_open_write_end`` by being a reader ourselves."""
        if self._unblock_fd < 0 and self._path_fd >= 0:
            self._unblock_fd = self._reopen(os.O_RDONLY | os.O_NONBLOCK)

    def finish(self) -> None:
        super().finish()
        self._unblock()

    def cancel(self) -> None:
        super().cancel()
        self._unblock()

    def write(self, data: bytes | memoryview) -> int:
        if self.fd < 0 and not (self.cancelled or self.finished):
            self._open_write_end()
        view = memoryview(data)
        while view:
            if self.cancelled or self.finished or self.fd < 0:
                raise BrokenPipeError(errno.EPIPE, "the pod stopped reading the archive")
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:
                self._wait()
                continue
            view = view[n:]
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        super().close()
        for fd in (self._unblock_fd, self._path_fd):
            if fd >= 0:
                os.close(fd)
        self._unblock_fd = self._path_fd = -1


# --------------------------------------------------------------------------------- transfers


async def io_visible(docker: Any, container_id: str) -> bool:
    """Whether the container sees its io dir (the marker the executor made there) and its root may
    open the executor's FIFOs: a stat through the archive API, no exec. False with an engine that
    runs on another machine than the executor, or that remaps the containers' root (userns-remap)."""
    if await root_remapped(docker):
        return False
    try:
        async with docker._query(f"containers/{container_id}/archive", method="HEAD",
                                 params={"path": posixpath.join(POD_IO_DIR, MARKER)}) as response:
            return bool(response.headers.get("X-Docker-Container-Path-Stat"))
    except Exception:  # noqa: BLE001 - a 404 (aiodocker fails to decode the empty HEAD body), a gone engine
        return False


# Per Docker client: whether its engine remaps the containers' root (asked once; see root_remapped).
_REMAPPED: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


async def root_remapped(docker: Any) -> bool:
    """Whether the engine runs containers in a user namespace of its own (``dockerd
    --userns-remap``): their root is then an unprivileged host user, which can stat the io dir but
    cannot open the executor's 0600 FIFOs (``tar: can't open ...: Permission denied``). Asked once
    per client (``GET /info``), logged once; an engine that does not answer counts as remapping
    (the archive API works everywhere)."""
    known = _REMAPPED.get(docker)
    if known is not None:
        return known
    try:
        info = await docker.system.info()
    except (DockerError, aiohttp.ClientError, OSError) as exc:  # OSError: TimeoutError too
        log.warning("cannot ask the Docker engine whether it remaps users: using the archive API",
                    error=str(exc))
        return True
    remapped = any(_security_option_name(opt) == "userns" for opt in info.get("SecurityOptions") or ())
    if docker not in _REMAPPED:
        _REMAPPED[docker] = remapped
        if remapped:
            log.info("the Docker engine remaps the containers' root (userns-remap): workspaces, caches "
                     "and the checkout go through the Docker archive API, not the pods' io dirs",
                     engine=getattr(docker, "docker_host", ""))
    return remapped


def _security_option_name(option: str) -> str:
    """``name=seccomp,profile=default`` -> ``seccomp`` (``docker info``'s SecurityOptions)."""
    fields = dict(part.partition("=")[::2] for part in option.split(","))
    return fields.get("name", "")


async def _capture(pod: Execer, cmd: list[str]) -> tuple[int, str]:
    out = bytearray()

    async def sink(data: bytes) -> None:
        if len(out) < _OUTPUT_LIMIT:
            out.extend(data[: _OUTPUT_LIMIT - len(out)])

    rc = await pod.exec(cmd, user="0", stdout=sink)
    return rc, out.decode(errors="replace").strip()


async def _transfer(pod: Execer, cmd: list[str], end: FifoReader | FifoWriter,
                    work: Callable[[], T]) -> tuple[int, str, T | BaseException]:
    """Run ``cmd`` in the pod and ``work`` in a thread on ``end`` together; returns the exec's
    status and output and ``work``'s result or error."""
    running = asyncio.create_task(_capture(pod, cmd))
    working = asyncio.create_task(asyncio.to_thread(work))
    try:
        done, _ = await asyncio.wait({running, working}, return_when=asyncio.FIRST_COMPLETED)
        if working in done:
            end.close_fifo()  # the pod's side gets its end of file (or EPIPE when the work failed)
        rc, output = await running
        end.finish()
        await asyncio.wait({working})
    except BaseException:
        end.cancel()
        running.cancel()
        await asyncio.gather(running, working, return_exceptions=True)
        end.close()
        raise
    end.close()
    exc = working.exception()
    return rc, output, exc if exc is not None else working.result()


def _work_error(rc: int, result: object) -> BaseException | None:
    """``work``'s error to raise, unless it only follows from the pod's side failing (then the
    exec's status and output say more)."""
    if not isinstance(result, BaseException):
        return None
    if rc != 0 and isinstance(result, (OSError, tarfile.ReadError)):
        return None
    return result


def tar_create_cmd(busybox: str, path: str, fifo: str) -> list[str]:
    parent, base = posixpath.split(path.rstrip("/"))
    script = (f'cd "$1" 2>/dev/null && {{ [ -e "$2" ] || [ -h "$2" ]; }} || exit {_RC_MISSING}; '
              f'[ -p "$3" ] || exit {_RC_NO_FIFO}; exec {busybox} tar c -f "$3" "$2"')
    return [busybox, "sh", "-c", script, "agola-tar", parent or "/", base, fifo]


def tar_extract_cmd(busybox: str, dest_dir: str, fifo: str, owner: tuple[int, int]) -> list[str]:
    # A missing dest_dir is created, its new directories owned by the step user (as a mkdir -p
    # run as that user would), even where only root may create them.
    script = (
        f'[ -p "$2" ] || exit {_RC_NO_FIFO}; d="$1"; '
        f'if [ ! -d "$d" ]; then p="$d"; while [ ! -e "$p" ]; do p=$({busybox} dirname "$p"); done; '
        f'{busybox} mkdir -p "$d" || exit 1; '
        f'if [ "$3" != 0:0 ]; then q="$d"; while [ "$q" != "$p" ]; do {busybox} chown "$3" "$q"; '
        f'q=$({busybox} dirname "$q"); done; fi; fi; '
        f'exec {busybox} tar x --numeric-owner -f "$2" -C "$d"'
    )
    return [busybox, "sh", "-c", script, "agola-untar", dest_dir, fifo, f"{owner[0]}:{owner[1]}"]


async def read_tar(pod: Execer, io: IoDir, busybox: str, path: str, consume: Callable[[FifoReader], T]) -> T:
    """``consume(reader)`` (in a worker thread) on a tar of pod directory ``path``, entries named
    ``<basename>/...`` as the archive API names them. ``IoUnusable``: nothing was read, use the API."""
    fifo = io.make_fifo("out")
    try:
        reader = fifo.open_reader()

        def work() -> T:
            result = consume(reader)
            # What tar writes after the end-of-archive blocks (padding): read, so tar does not
            # die of a broken pipe; a pod that goes on writing is cut off.
            extra = 0
            while extra < _DRAIN_LIMIT and (data := reader.read(PIPE_SIZE)):
                extra += len(data)
            return result

        rc, output, result = await _transfer(pod, tar_create_cmd(busybox, path, fifo.pod_path), reader, work)
    finally:
        fifo.unlink()
    error = _work_error(rc, result)
    if error is not None:
        raise error
    if rc == _RC_MISSING:
        raise NotExist(f"{path!r} does not exist in the pod")
    if rc == _RC_NO_FIFO:
        raise IoUnusable(output)
    if rc != 0:
        raise BadRequest(f"cannot archive {path!r} in the pod (exit code {rc}): {output}")
    return result  # type: ignore[return-value]  # not an error: checked above


async def write_tar(pod: Execer, io: IoDir, busybox: str, dest_dir: str, owner: tuple[int, int],
                    produce: Callable[[FifoWriter], Any]) -> None:
    """Extract into pod directory ``dest_dir`` the tar ``produce(writer)`` writes (in a worker
    thread). The caller checks that the io dir is usable first: ``produce`` may consume a stream."""
    fifo = io.make_fifo("in")
    try:
        writer = fifo.open_writer()

        def work() -> None:
            produce(writer)
            writer.close_fifo()  # the only write end: tar x gets its end of file

        rc, output, result = await _transfer(pod, tar_extract_cmd(busybox, dest_dir, fifo.pod_path, owner), writer,
                                             work)
    finally:
        fifo.unlink()
    error = _work_error(rc, result)
    if error is not None:
        raise error
    if rc == _RC_NO_FIFO:
        raise BadRequest("the pod does not see the executor's io dir")
    if rc != 0:
        raise BadRequest(f"cannot extract the archive into {dest_dir!r} in the pod (exit code {rc}): {output}")
