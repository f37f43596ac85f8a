"""Objects of the bare repositories read through long-lived ``git cat-file --batch`` processes.

Reading a file at a commit (run creation reads the pipeline file, trying up to five names) used to
cost two git processes per name (``cat-file -t``, then ``cat-file blob``): a fork and exec of git
each, a few milliseconds apiece on a busy machine. One ``cat-file --batch`` per repository answers
every name over its pipes instead. It sees later pushes: git looks a missing object up again
after rescanning the packs, and reads refs from disk at each request.

Small objects are read whole; a bigger blob is streamed by a ``git cat-file blob <oid>`` of its
own (the batch process, whose output is then mid-object, is discarded), so memory stays bounded
whatever the file. Idle processes end after ``idle`` seconds; at most ``max_processes`` live.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import OrderedDict
from pathlib import Path

import attrs

from agola.errors import Internal
from agola.util.log import get_logger

log = get_logger(__name__)

INLINE_MAX = 1024 * 1024
READ_TIMEOUT = 30.0
# Killed processes being waited for (a task nobody references could be collected mid-wait).
_reaping: set[asyncio.Future[int]] = set()
_HEADER_RE = re.compile(rb"^([0-9a-f]{40}|[0-9a-f]{64}) (blob|tree|commit|tag) (\d+)\n$")


@attrs.frozen
class ObjectInfo:
    oid: str
    type: str
    size: int


@attrs.frozen
class ObjectRead:
    info: ObjectInfo
    content: bytes | None  # None: over the inline limit, read it by ``info.oid``


class CatFile:
    """One ``git cat-file --batch`` of one repository; requests go one at a time."""

    def __init__(self, git_dir: Path, env: dict[str, str]) -> None:
        self.git_dir = git_dir
        self._env = dict(env, GIT_DIR=str(git_dir))
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self.last_used = time.monotonic()

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    async def read(self, spec: str, inline_max: int = INLINE_MAX) -> ObjectRead | None:
        """The object ``spec`` (``<rev>:<path>``, no newline) names; None when there is none."""
        async with self._lock:
            self.last_used = time.monotonic()
            try:
                return await self._read(spec, inline_max)
            except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                self._discard()
                log.warning("git cat-file failed", repo=str(self.git_dir), error=str(exc) or type(exc).__name__)
                raise Internal("git cat-file failed") from None
            except BaseException:
                self._discard()  # cancelled mid-answer: the pipe is out of step
                raise
            finally:
                self.last_used = time.monotonic()

    async def _read(self, spec: str, inline_max: int) -> ObjectRead | None:
        proc = await self._process()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(spec.encode() + b"\n")
        await proc.stdin.drain()
        line = await asyncio.wait_for(proc.stdout.readline(), READ_TIMEOUT)
        if not line:
            raise ConnectionResetError("git cat-file ended")
        match = _HEADER_RE.match(line)
        if match is None:
            return None  # "<spec> missing" or "<spec> ambiguous"
        info = ObjectInfo(match[1].decode(), match[2].decode(), int(match[3]))
        if info.size > inline_max:
            self._discard()  # its output goes on with the object: not worth reading through
            return ObjectRead(info, None)
        data = await asyncio.wait_for(proc.stdout.readexactly(info.size + 1), READ_TIMEOUT)
        return ObjectRead(info, data[:-1])

    async def _process(self) -> asyncio.subprocess.Process:
        if self._proc is None or self._proc.returncode is not None:
            self._proc = await asyncio.create_subprocess_exec(
                "git", "cat-file", "--batch", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL, env=self._env, limit=64 * 1024)
        return self._proc

    def _discard(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            # Reaped in the background: its pipes close once it is gone.
            task = asyncio.ensure_future(proc.wait())
            _reaping.add(task)
            task.add_done_callback(_reaping.discard)

    async def close(self) -> None:
        """End the process (waits for a request in progress)."""
        async with self._lock:
            proc, self._proc = self._proc, None
            if proc is None:
                return
            if proc.stdin is not None:
                proc.stdin.close()  # cat-file ends at the end of its input
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()


class CatFilePool:
    """``CatFile`` processes by repository, at most ``max_processes``, each ended after ``idle``
    seconds without a request."""

    def __init__(self, env: dict[str, str], *, max_processes: int = 16, idle: float = 60.0) -> None:
        self._env = env
        self.max_processes = max_processes
        self.idle = idle
        self._readers: OrderedDict[Path, CatFile] = OrderedDict()
        self._reaper: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._readers)

    def get(self, git_dir: Path) -> CatFile:
        reader = self._readers.get(git_dir)
        if reader is None:
            reader = self._readers[git_dir] = CatFile(git_dir, self._env)
            self._evict(self.max_processes)
        self._readers.move_to_end(git_dir)
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._reap(), name="gitserver-catfile-reaper")
        return reader

    async def read(self, git_dir: Path, spec: str, inline_max: int = INLINE_MAX) -> ObjectRead | None:
        return await self.get(git_dir).read(spec, inline_max)

    def _evict(self, keep: int) -> None:
        for key in list(self._readers):
            if len(self._readers) <= keep:
                return
            if not self._readers[key].busy:
                self._close_later(self._readers.pop(key))

    def _close_later(self, reader: CatFile) -> None:
        task = asyncio.create_task(reader.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _reap(self) -> None:
        while self._readers:
            await asyncio.sleep(self.idle / 2)
            now = time.monotonic()
            for key, reader in list(self._readers.items()):
                if not reader.busy and now - reader.last_used >= self.idle:
                    self._close_later(self._readers.pop(key))

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        readers, self._readers = list(self._readers.values()), OrderedDict()
        await asyncio.gather(*(r.close() for r in readers), *self._closing)
