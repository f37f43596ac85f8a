"""Task logs: one file for the setup and one per step, written as produced, followed live.

Output goes straight from the pod's stream to the file, chunk by chunk, so a step printing
hundreds of megabytes keeps the executor's memory flat. Followers read the file from disk and
sleep on an event that every write sets: a new chunk reaches them as soon as it is written, with
no polling delay, and a follower that falls behind costs nothing but a file offset. A step that
prints fast is followed in chunks gathered over ``GATHER_DELAY`` (see there).

Files: ``<task dir>/logs/setup.log`` and ``<task dir>/logs/steps/<n>.log`` (as in the reference).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from pathlib import Path

from agola.errors import BadRequest, NotExist
from agola.services.executor.masking import StreamMasker

# What a follower reads from the file at once: a follower behind the writer catches up in big
# chunks (each one costs a write and a read at every HTTP hop up to the user).
READ_CHUNK = 1024 * 1024
# After a small chunk a follower lets the writer add to the file for this long before reading
# again: a step printing fast reaches every hop in chunks of tens of KiB instead of one per write
# (each write of the pod's stream is a few KiB with a tty), a line printed alone still goes out
# at once (the pause comes after it).
GATHER_BELOW = 256 * 1024
GATHER_DELAY = 0.01
# A log stops growing here: a step printing without end must not fill the executor's disk, nor
# the object storage the runservice archives logs to (``executor.maxLogSize``).
DEFAULT_MAX_LOG_SIZE = 100 * 1024 * 1024


def truncation_marker(limit: int) -> bytes:
    return (f"\n[agola: log truncated: it reached {limit} bytes (executor.maxLogSize);"
            " the rest of the output was dropped]\n").encode()


class LogFile:
    """An append-only log being written; ``follow()`` streams it to any number of readers."""

    def __init__(self, path: Path, masker: StreamMasker | None = None, max_size: int = DEFAULT_MAX_LOG_SIZE) -> None:
        """``masker``: secret values to replace by ``***`` before anything reaches the file;
        ``max_size``: what goes beyond is dropped, after a marker line saying so."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._masker = masker if masker is not None and masker.active else None
        self.max_size = max_size
        self.truncated = False
        self._file = open(path, "wb", buffering=0)  # unbuffered: followers read what was written
        self.size = 0
        self.finished = False
        self._changed = asyncio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def write(self, data: bytes) -> None:
        """Append ``data`` (the ``Sink`` signature, so pod output can be written directly)."""
        self.write_nowait(data)

    def write_nowait(self, data: bytes) -> None:
        """``write`` for synchronous callers (timers, callbacks)."""
        if self.finished or not data:
            return
        if self._masker is not None:
            data = self._masker.feed(data)
        self._append(data)

    def _append(self, data: bytes) -> None:
        if not data or self.truncated:
            return
        room = self.max_size - self.size
        if len(data) > room:
            data = data[: max(room, 0)] + truncation_marker(self.max_size)
            self.truncated = True
        view = memoryview(data)
        while view:
            written = self._file.write(view)
            view = view[written or 0 :]
        self.size += len(data)
        self._notify()

    async def line(self, text: str) -> None:
        """Append one human-readable line (executor messages such as ``Starting pod.``)."""
        await self.write(text.rstrip("\n").encode() + b"\n")

    def close(self) -> None:
        if not self.finished:
            if self._masker is not None:
                self._append(self._masker.flush())
            self.finished = True
            self._file.close()
            self._notify()

    async def follow(self, offset: int = 0) -> AsyncIterator[bytes]:
        """Yield the log from ``offset``, then new bytes as written, until the log is closed."""
        with open(self.path, "rb") as f:
            f.seek(offset)
            while True:
                changed = self._changed  # taken before reading: a write after the read wakes us
                data = f.read(READ_CHUNK)
                if data:
                    yield data
                    if len(data) < GATHER_BELOW and not self.finished:
                        await asyncio.sleep(GATHER_DELAY)
                    continue
                if self.finished:
                    data = f.read()
                    if data:
                        yield data
                    return
                await changed.wait()


class TaskLogs:
    """The logs of one task run on this executor."""

    def __init__(self, task_dir: Path, masked_values: Iterable[str] = (), max_size: int = DEFAULT_MAX_LOG_SIZE) -> None:
        """``masked_values``: the task's secret values, ``***`` in every log (``masking.py``);
        ``max_size``: the size limit of each log."""
        self.dir = task_dir / "logs"
        self._masked = tuple(masked_values)
        self.max_size = max_size
        self.setup = LogFile(self.dir / "setup.log", StreamMasker(self._masked), max_size)
        self._steps: dict[int, LogFile] = {}

    def step_path(self, index: int) -> Path:
        return self.dir / "steps" / f"{index}.log"

    def step(self, index: int) -> LogFile:
        """The log of step ``index``, created when the step starts."""
        if index not in self._steps:
            self._steps[index] = LogFile(self.step_path(index), StreamMasker(self._masked), self.max_size)
        return self._steps[index]

    def live(self, setup: bool, step: int | None) -> LogFile | None:
        if setup:
            return self.setup
        return self._steps.get(step) if step is not None else None

    def close(self) -> None:
        self.setup.close()
        for log in self._steps.values():
            log.close()


def log_path(task_dir: Path, *, setup: bool = False, step: int | None = None) -> Path:
    if setup == (step is not None):
        raise BadRequest("exactly one of setup or step is required")
    return task_dir / "logs" / ("setup.log" if setup else f"steps/{step}.log")


async def read_log(
    task_dir: Path,
    live: TaskLogs | None,
    *,
    setup: bool = False,
    step: int | None = None,
    follow: bool = False,
) -> AsyncGenerator[bytes, None]:
    """The stream behind ``GET /executor/logs``: a live log (followed if asked) or a finished file.

    Raises ``NotExist`` when there is no such log (yet): callers should check before sending
    headers, so the first ``__anext__`` is where that happens.
    """
    path = log_path(task_dir, setup=setup, step=step)
    log = live.live(setup, step) if live is not None else None
    if log is not None and follow:
        async for chunk in log.follow():
            yield chunk
        return
    if not path.exists():
        raise NotExist(f"no log {path.name} for this task")
    size = log.size if log is not None and not log.finished else os.path.getsize(path)
    with open(path, "rb") as f:
        remaining = size
        while remaining > 0:
            data = f.read(min(READ_CHUNK, remaining))
            if not data:
                break
            remaining -= len(data)
            yield data
