"""Steps run by container 0's pid 1 (the *step runner*) instead of one ``docker exec`` each.

A ``docker exec`` costs three API round trips and, in the engine, two runc processes, the shim's
io setup and dockerd's bookkeeping: ~72 ms of Docker's CPU per step beyond what ``docker run``
costs (measured with ``bench/tools/dockercpu.py``, docs/executor.md), most of what separated P2
from ``xargs docker run``. With a tty (Agola's default) the output also goes through dockerd and
the shim (``docker exec -t`` of 100 MB: 6.5 s of their CPU). So when container 0 runs our busybox
as pid 1 and the pod sees its io dir, that pid 1 is a small runner (``dockerstart.RUNNER_SCRIPT``)
and a step goes through the kernel only:

- the executor makes FIFOs in the io dir: ``<id>.c`` holding the step's shell code (its
  environment as ``export`` lines, ``cd``, the script written to the pod's tmpfs, then ``exec``
  of the command: secrets go through a pipe, never to a disk), ``<id>.o`` (and ``<id>.e``) for its
  output, then writes ``<id> <mode>`` to the request FIFO;
- pid 1 forks a subshell that sources ``<id>.c`` with its output on the FIFO or, for a tty step,
  on a new pty of the container's own ``/dev/pts``, as ``docker exec -t`` (runc) makes one: the
  executor opens ``/proc/<container 0's pid>/root/dev/pts/ptmx`` (checked to be a ptmx), keeps the
  master and sends the slave's number; the step becomes a session leader with the slave as its
  controlling terminal (busybox ``setsid -c``). Closing the master after the step hangs up what
  the step left holding the slave, as the end of a ``docker exec -t`` does;
- pid 1 writes ``<id> <exit status>`` to the status FIFO when the subshell has ended; the executor
  then reads what is left of the output (a pipe or pty holds everything a finished process wrote)
  and returns. The status FIFO ending (every writer gone) means pid 1 is gone: the pod was killed.

Only with an engine in the executor's own mount namespace (its pid, from the socket's peer
credentials, has the same ``/proc/<pid>/ns/mnt``; ``shares_mounts``): the io dir must be the same
directory for both, and container 0's pid must be a pid of the executor's. Elsewhere (an executor
in a container, rootless Docker, an executor not allowed to look) steps go through ``docker exec``.

What is kept from ``docker exec``: the step's user (only steps of container 0's own user go this
way, and only when that user is root or the executor's own), its environment (the container's,
plus the step's), working dir, exit status, default signal dispositions, stdin (``/dev/null``,
or the tty), a tty's ``\\r\\n``, a new terminal per tty step. Anything else (another user, an environment name the shell
cannot export, a second command while one runs, no hello from pid 1) goes through ``docker
exec`` as before. Nothing in the io dir is trusted (``dockerio``): FIFOs are opened with
``O_NOFOLLOW`` and checked to be the ones the executor made; pid 1 and the steps are the task's
own processes, so what they could forge (a status line) only concerns their own task.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import re
import secrets
import shlex
import socket
import stat
import struct
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import attrs

from agola.services.executor.drivers.base import Sink, discard
from agola.services.executor.drivers.dockerio import IoDir
from agola.services.executor.drivers.dockerstart import BUSYBOX
from agola.util.log import get_logger

log = get_logger(__name__)

HELLO_TIMEOUT = 10.0
KILLED_STATUS = 137  # as docker exec reports a command killed with its container
_READ_MAX = 1 << 20
_DRAIN_MAX = 16 << 20  # read after a command's end: what it left in the pipe is at most a pipe's size
_LINE_MAX = 4096
# ioctls of a pty master (asm-generic encoding: x86, arm, riscv...; elsewhere the ioctl fails and
# tty steps go through docker exec).
_TIOCGPTN = (2 << 30) | (4 << 16) | (ord("T") << 8) | 0x30
_TIOCSPTLCK = (1 << 30) | (4 << 16) | (ord("T") << 8) | 0x31
_PTMX = os.makedev(5, 2)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Names the shell gives a meaning of its own: such a step goes through docker exec.
_SHELL_NAMES = frozenset({"CDPATH", "ENV", "FUNCNAME", "HISTFILE", "HISTFILESIZE", "IFS", "LINENO", "MAIL",
                          "MAILCHECK", "MAILPATH", "OPTARG", "OPTIND", "PPID", "PS1", "PS2", "PS4", "RANDOM",
                          "SECONDS", "SHLVL"})


def shares_mounts(socket_path: str) -> bool:
    """Whether the engine behind the unix socket ``socket_path`` runs in this process's mount
    namespace, so that it resolves a host path as this process does."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(socket_path)
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid = struct.unpack("3i", creds)[0]
        if pid <= 0:  # the engine is in a pid namespace this process cannot see
            return False
        return os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
    except OSError as exc:
        log.info("cannot tell whether the Docker engine shares the executor's mounts: steps go through docker exec",
                 error=str(exc))
        return False


@attrs.frozen
class Hello:
    uid: int
    workdir: str  # "-" not asked, "!" failed, else the absolute path created


class RunnerUnavailable(Exception):
    """This command cannot go through the step runner (nothing was sent): use docker exec."""


def open_pty(container_pid: int) -> tuple[int, int]:
    """A new pty in the container's own ``/dev/pts``: (master fd, the slave's number). ``dev`` and
    ``dev/pts`` are mount points the container cannot replace; the last component is not
    followed and the result must be a ptmx."""
    fd = os.open(f"/proc/{container_pid}/root/dev/pts/ptmx",
                 os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)
        if not stat.S_ISCHR(st.st_mode) or st.st_rdev != _PTMX:
            raise OSError(errno.EPERM, "not the container's ptmx")
        number = struct.unpack("I", fcntl.ioctl(fd, _TIOCGPTN, b"\0" * 4))[0]
        fcntl.ioctl(fd, _TIOCSPTLCK, struct.pack("i", 0))
    except BaseException:
        os.close(fd)
        raise
    return fd, number


class StepRunner:
    """The executor's side of a pod's step runner (see the module doc)."""

    def __init__(self, io: IoDir) -> None:
        self._io = io
        self._request = io.make_fifo("req")
        self._status = io.make_fifo("st")
        self._container_pid: Callable[[], Coroutine[Any, Any, int]] | None = None
        self._pid: asyncio.Task[int] | None = None
        self._ttys = True  # until a pty cannot be opened
        self._request_fd = -1
        self._status_fd = -1
        self._hello: asyncio.Future[Hello | None] | None = None
        self._pending: dict[str, asyncio.Future[int]] = {}
        self._reader: asyncio.Task[None] | None = None
        # Outputs that processes left by finished commands still hold: read and dropped.
        self._leftovers: set[asyncio.Task[None]] = set()
        self._busy = False
        self._broken = False
        self._gone = False

    @property
    def names(self) -> tuple[str, str]:
        """The request and status FIFOs' names in the io dir (pid 1's arguments)."""
        return os.path.basename(self._request.pod_path), os.path.basename(self._status.pod_path)

    def start(self, container_pid: Callable[[], Coroutine[Any, Any, int]]) -> None:
        """Open the executor's ends, before container 0 starts (neither open waits; the status
        FIFO read end must predate pid 1's write end for pid 1's exit to show as a hang-up).
        ``container_pid``: asked once container 0 started (``started``), for tty steps."""
        self._container_pid = container_pid
        loop = asyncio.get_running_loop()
        self._hello = loop.create_future()
        self._status_fd = self._status.open_fd(os.O_RDONLY | os.O_NONBLOCK)
        self._request_fd = self._request.open_fd(os.O_RDWR | os.O_NONBLOCK)
        self._reader = asyncio.create_task(self._read_status(), name="pod-runner-status")

    def started(self) -> None:
        """Container 0 started: its pid is looked up while the pod's setup goes on (the first step
        has a tty, Agola's default, so it is needed on the way to it)."""
        if self._pid is None and self._container_pid is not None:
            self._pid = asyncio.create_task(self._container_pid(), name="pod-runner-pid")
            self._pid.add_done_callback(lambda task: task.cancelled() or task.exception())  # seen by _open_pty

    async def workdir(self) -> str | None:
        """The working dir pid 1 created as it started (``dockerstart.read_workdir``'s twin)."""
        hello = await self.hello()
        return hello.workdir if hello is not None and hello.workdir.startswith("/") else None

    async def hello(self, timeout: float = HELLO_TIMEOUT) -> Hello | None:
        """pid 1's hello (its uid, the working dir it made); None if it did not say it in time."""
        if self._hello is None:
            return None
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(self._hello)
        except TimeoutError:
            log.info("container 0 did not start its step runner: steps go through docker exec")
            if not self._hello.done():
                self._hello.set_result(None)
            return None

    def accepts(self, *, root: bool, env: Mapping[str, str], tty: bool) -> bool:
        """Whether a command can go this way now (else: docker exec). ``root``: it must run as
        root; otherwise it runs as container 0's own user."""
        hello = self._hello.result() if self._hello is not None and self._hello.done() else None
        if hello is None or self._busy or self._broken or self._gone:
            return False
        if hello.uid != 0 and (root or hello.uid != os.geteuid()):
            return False
        if tty and not self._ttys:
            return False
        return all(_NAME.match(name) and name not in _SHELL_NAMES for name in env)

    async def run(
        self,
        cmd: list[str],
        *,
        env: Mapping[str, str],
        working_dir: str,
        tty: bool,
        stdout: Sink,
        stderr: Sink | None,
        script: tuple[str, bytes] | None = None,
    ) -> int:
        """Run ``cmd`` (after writing ``script`` = (path, content) in the pod) and return its exit
        status; the caller checked ``accepts`` first. ``RunnerUnavailable``: nothing was run."""
        self._busy = True  # before any wait: a second command meanwhile goes through docker exec
        try:
            pty = await self._open_pty() if tty else None
        except BaseException:
            self._busy = False
            raise
        sid = secrets.token_hex(8)
        mode = f"t {pty[1]}" if pty is not None else ("e" if stderr is not None else "o")
        argv = [BUSYBOX, "setsid", "-c", *cmd] if tty else cmd
        fifos = [self._io.make_fifo_named(f"{sid}.c")]
        outputs: list[_Output] = [_Output(pty[0], -1, stdout)] if pty is not None else []
        code_fd = -1
        writer: asyncio.Task[None] | None = None
        done = asyncio.get_running_loop().create_future()
        self._pending[sid] = done
        if self._gone:  # pid 1 went since accepts(): nothing will answer
            done.set_result(KILLED_STATUS)
        finished = False
        try:
            code_fd = fifos[0].open_fd(os.O_RDWR | os.O_NONBLOCK)
            writer = asyncio.create_task(_write_all(code_fd, _code(argv, env, working_dir, script)))
            for suffix, sink in (("o", stdout), ("e", stderr)) if pty is None else ():
                if sink is not None:
                    fifos.append(self._io.make_fifo_named(f"{sid}.{suffix}"))
                    # A write end of our own until the command ends: no end of file before it opens its own.
                    holder = fifos[-1].open_fd(os.O_RDWR | os.O_NONBLOCK)
                    outputs.append(_Output(fifos[-1].open_fd(os.O_RDONLY | os.O_NONBLOCK), holder, sink))
            os.write(self._request_fd, f"{sid} {mode}\n".encode())
            pumps = [asyncio.create_task(out.pump(done)) for out in outputs]
            try:
                await asyncio.gather(*pumps)
            except BaseException:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
                raise
            status = await done  # a pty's end of file (every slave closed) may come first
            finished = True
            return status
        finally:
            self._pending.pop(sid, None)
            if writer is not None:
                writer.cancel()
                await asyncio.gather(writer, return_exceptions=True)
            if code_fd >= 0:
                os.close(code_fd)
            for out in outputs:
                leftover = out.close(keep_reading=finished)
                if leftover is not None:
                    self._leftovers.add(leftover)
                    leftover.add_done_callback(self._leftovers.discard)
            for fifo in fifos:
                fifo.unlink()
            # Cancelled or failed mid-step, the command may still run in pid 1: no more requests.
            self._broken = self._broken or not finished
            self._busy = False

    async def _open_pty(self) -> tuple[int, int]:
        try:
            self.started()
            if self._pid is None:
                raise ValueError("the pod was not started")
            return await asyncio.to_thread(open_pty, await asyncio.shield(self._pid))
        except (OSError, ValueError) as exc:  # ValueError: no pid (the engine's answer)
            log.info("cannot open a pty in the pod: tty steps go through docker exec", error=str(exc))
            self._ttys = False
            raise RunnerUnavailable(str(exc)) from exc

    def request_exit(self) -> bool:
        """Ask pid 1 to exit 0 (the task is over); False if it cannot be asked (it still runs a
        command, or is gone)."""
        if self._request_fd < 0 or self._busy or self._broken or self._gone:
            return False
        try:
            os.write(self._request_fd, b"- x\n")
        except OSError:
            return False
        return True

    def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None
        if self._pid is not None and not self._pid.done():
            self._pid.cancel()
        for leftover in self._leftovers:
            leftover.cancel()  # closes its fd
        if self._status_fd >= 0:
            asyncio.get_running_loop().remove_reader(self._status_fd)  # before its number is reused
        for fd in (self._request_fd, self._status_fd):
            if fd >= 0:
                os.close(fd)
        self._request_fd = self._status_fd = -1
        self._request.unlink()
        self._status.unlink()

    async def _read_status(self) -> None:
        loop = asyncio.get_running_loop()
        fd = self._status_fd
        readable = asyncio.Event()
        loop.add_reader(fd, readable.set)
        buf = b""
        try:
            while True:
                await readable.wait()
                readable.clear()
                data, eof = _read_some(fd)
                buf += data
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    self._on_status(line)
                if eof or len(buf) > _LINE_MAX:
                    break
        finally:
            if self._status_fd == fd:  # else close() did it
                loop.remove_reader(fd)
            # pid 1 is gone (every writer closed): whatever ran was killed with the pod.
            self._gone = True
            for future in self._pending.values():
                if not future.done():
                    future.set_result(KILLED_STATUS)
            if self._hello is not None and not self._hello.done():
                self._hello.set_result(None)

    def _on_status(self, line: bytes) -> None:
        fields = line.decode(errors="replace").split(" ", 2)
        if fields[0] == "hello" and len(fields) == 3 and fields[1].isdigit():
            if self._hello is not None and not self._hello.done():
                self._hello.set_result(Hello(int(fields[1]), fields[2]))
                # pid 1 holds both FIFOs open: their names are of no more use to anyone.
                self._request.unlink()
                self._status.unlink()
            return
        if len(fields) == 2 and fields[1].isdigit():
            future = self._pending.get(fields[0])
            if future is not None and not future.done():
                future.set_result(int(fields[1]))


def _code(argv: list[str], env: Mapping[str, str], working_dir: str, script: tuple[str, bytes] | None) -> bytes:
    """The shell code a step's subshell sources: it ends by exec'ing ``argv``."""
    # pid 1's shell exported SHLVL, a cd sets OLDPWD: neither is in a docker exec's environment.
    lines = ["unset SHLVL"]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
    if working_dir:
        wd = shlex.quote(working_dir)
        lines.append(f"cd -- {wd} 2>/dev/null || {{ echo \"agola: cannot use the working dir \"{wd}\": "
                     "no such directory or not allowed\" >&2; exit 126; }")
        lines.append("unset OLDPWD")
    if script is not None:
        path, content = script
        lines.append(f"printf %s {shlex.quote(content.decode('utf-8', errors='surrogateescape'))} > {shlex.quote(path)} "
                     "|| exit 126")
    lines.append("exec " + " ".join(shlex.quote(arg) for arg in argv))
    return ("\n".join(lines) + "\n").encode("utf-8", errors="surrogateescape")


def _read_some(fd: int) -> tuple[bytes, bool]:
    """What ``fd`` has now (up to ~1 MiB) and whether it reached its end."""
    chunks: list[bytes] = []
    size = 0
    while size < _READ_MAX:
        try:
            data = os.read(fd, _READ_MAX - size)
        except BlockingIOError:
            break
        except OSError as exc:
            if exc.errno == errno.EIO:  # a pty whose slaves were all closed
                return b"".join(chunks), True
            raise
        if not data:
            return b"".join(chunks), True
        chunks.append(data)
        size += len(data)
    return b"".join(chunks), False


class _Output:
    """A command's output: a pty master, or a FIFO's read end (``holder``: a write end of ours
    until the command ended, so that its end of file means the command's leftovers closed it)."""

    def __init__(self, fd: int, holder: int, sink: Sink) -> None:
        self.fd, self.holder, self.sink = fd, holder, sink
        self.eof = False

    def _release(self) -> None:
        if self.holder >= 0:
            os.close(self.holder)
            self.holder = -1

    async def pump(self, done: asyncio.Future[int]) -> None:
        """Copy to the sink until the end of file, or until ``done`` and nothing is left to read."""
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        loop.add_reader(self.fd, wake.set)
        done.add_done_callback(lambda _: wake.set())
        try:
            while True:
                wake.clear()
                data, self.eof = _read_some(self.fd)
                if data:
                    await self.sink(data)
                    if len(data) >= _READ_MAX:
                        continue
                if self.eof:
                    return
                if done.done():
                    # The command is over: a pipe or pty holds all it wrote. What processes it left
                    # behind write later is not its output (docker exec -t drops it too).
                    self._release()
                    drained = 0
                    while drained < _DRAIN_MAX:
                        data, self.eof = _read_some(self.fd)
                        if data:
                            await self.sink(data)
                        if self.eof or not data:
                            return
                        drained += len(data)
                    return
                await wake.wait()
        finally:
            loop.remove_reader(self.fd)

    def close(self, *, keep_reading: bool) -> asyncio.Task[None] | None:
        """Close it, or (``keep_reading``, still held by the command's leftovers) hand it to a task
        that reads and drops what they write until they close it or the pod ends: their writes
        neither fail nor block, as after a ``docker exec``."""
        self._release()
        if self.eof or not keep_reading:
            os.close(self.fd)
            return None
        self.sink = discard
        return asyncio.create_task(self._drop_until_eof(), name="pod-runner-leftover")

    async def _drop_until_eof(self) -> None:
        try:
            await self.pump(asyncio.get_running_loop().create_future())  # never done: to the end of file
        finally:
            os.close(self.fd)


async def _write_all(fd: int, data: bytes) -> None:
    """Write ``data`` to a non-blocking FIFO end, waiting for room when it is full."""
    loop = asyncio.get_running_loop()
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
            continue
        except BlockingIOError:
            pass
        room = loop.create_future()
        loop.add_writer(fd, room.set_result, None)
        try:
            await room
        finally:
            loop.remove_writer(fd)


__all__ = ["HELLO_TIMEOUT", "KILLED_STATUS", "Hello", "RunnerUnavailable", "StepRunner", "open_pty", "shares_mounts"]
