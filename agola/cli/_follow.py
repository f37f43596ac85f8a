"""Following a run live: task statuses and every step's log as it is written, until the run ends
(``agola run logs --follow``, ``agola directrun start --follow``, ``agola run restart --follow``).

What wakes the follower: the run events stream (``/runs/events``: the run's phase and result
changes), the end of a step's log (the task moved on), and, because the events stream carries
no task changes (as Agola's), a read of the run at most once a second while it runs, which is how
a task's start is noticed. Logs are streamed with ``follow`` so lines show up as the step prints
them; how they are shown is ``agola.cli._followview``'s business (ordered on a pipe, a live view
on a terminal).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import attrs

from agola.cli._followview import (
    NO_LOGS,
    LiveView,
    PipeView,
    TaskView,
    in_order,
    prefix_lines,
    run_ref,
    use_color,
)
from agola.cli._runs import duration
from agola.client import ClientError, NotExist, RunResponse, RunTaskResponse
from agola.client.types import TASK_FINISHED_STATUSES
from agola.util.aio import wait_event
from agola.util.backoff import Backoff
from agola.util.timefmt import parse_time

if TYPE_CHECKING:
    from agola.client import GatewayClient

# Gets one line, or several joined by "\n" (no trailing newline).
Writer = Callable[[str], None]
MAX_LINE = 64 * 1024


class LineBuffer:
    """Turns arbitrary byte chunks into prefixed lines; a trailing ``\\r`` (tty output) is dropped.

    ``write`` gets the complete lines of each chunk at once, joined by ``\\n`` (each line
    prefixed): a step printing a million lines costs a few calls per chunk, not a few per line.
    """

    def __init__(self, write: Writer, prefix: str) -> None:
        self.write = write
        self.prefix = prefix
        self.pending = b""
        self.emitted = False

    def feed(self, chunk: bytes) -> None:
        data = self.pending + chunk if self.pending else chunk
        cut = data.rfind(b"\n")
        if cut >= 0:
            self._emit(data[:cut])
            data = data[cut + 1 :]
        if len(data) > MAX_LINE:  # output without newlines: show it anyway, in pieces
            self._emit(data)
            data = b""
        self.pending = data

    def close(self) -> None:
        if self.pending:
            self._emit(self.pending)
            self.pending = b""

    def _emit(self, block: bytes) -> None:
        self.emitted = True
        # What `line.rstrip(b"\r")` does to each line, done on the whole block.
        while b"\r\n" in block:
            block = block.replace(b"\r\n", b"\n")
        self.write(prefix_lines(self.prefix, block.rstrip(b"\r").decode(errors="replace")))


class View(Protocol):
    def update(self, run: RunResponse, tasks: dict[str, TaskView]) -> None: ...
    def line(self, task: TaskView) -> None: ...
    def finish(self, run: RunResponse) -> None: ...
    def close(self) -> None: ...


@attrs.define
class RunFollower:
    gw: GatewayClient
    write: Writer
    poll_interval: float = 1.0
    # How long a log that is not there yet (executor still starting, archive being fetched) is
    # waited for once its task has finished.
    log_wait: float = 15.0
    prefix_run: bool = False
    # A live view on this terminal (one run only), else the ordered output through ``write``.
    live: bool = False
    # The runs being followed, as last read: what a Ctrl-C leaves running (interrupted_message).
    following: dict[str, RunResponse] = attrs.field(factory=dict)

    def _prefix(self, run: RunResponse | None, task_name: str) -> str:
        if self.prefix_run and run is not None:
            return f"[{run.name}/{task_name}] "
        return f"[{task_name}] "

    def _view(self, run: RunResponse) -> View:
        if self.live:
            return LiveView(sys.stdout, use_color(sys.stdout))
        return PipeView(self.write, lambda name: self._prefix(run, name))

    async def follow(self, run_id: str) -> RunResponse:
        """Show the run until it has finished and every log was read; return the final run."""
        run = await self.gw.get_run(run_id)
        self.following[run.id] = run
        view = self._view(run)
        tasks: dict[str, TaskView] = {}
        readers: dict[str, asyncio.Task[None]] = {}
        wake = asyncio.Event()
        watchers = [asyncio.create_task(self._events(run.id, wake))]
        if isinstance(view, LiveView):
            watchers.append(asyncio.create_task(_ticks(view)))
        loop = asyncio.get_running_loop()
        finished_at: float | None = None
        try:
            while True:
                _update(run, tasks)
                for t in tasks.values():
                    if t.id not in readers and t.status not in NO_LOGS and not t.reused:
                        readers[t.id] = asyncio.create_task(self._read(run, t, view, wake))
                view.update(run, tasks)
                if run.finished:
                    finished_at = finished_at or loop.time()
                    # Every log read, or the ones still missing given up on.
                    if all(r.done() for r in readers.values()) or loop.time() - finished_at > self.log_wait + 5:
                        break
                wake.clear()
                await wait_event(wake, self.poll_interval)
                run = await self.gw.get_run(run_id)
                self.following[run.id] = run
            _update(run, tasks)
            view.finish(run)
            self.following.pop(run.id, None)
            return run
        finally:
            for job in [*watchers, *readers.values()]:
                job.cancel()
            await asyncio.gather(*watchers, *readers.values(), return_exceptions=True)
            view.close()

    async def _events(self, run_id: str, wake: asyncio.Event) -> None:
        """Wake the follower on each event of the run (a gateway without the stream: the timer only)."""
        with contextlib.suppress(ClientError):
            async for event in self.gw.run_events():
                if event.run_id == run_id:
                    wake.set()

    async def _read(self, run: RunResponse, task: TaskView, view: View, wake: asyncio.Event) -> None:
        def out(text: str) -> None:
            task.lines.append(text)
            view.line(task)

        try:
            await self._task_logs(run.id, task.id, out, follow=True)
        except ClientError as exc:
            out(f"(logs unavailable: {exc.message})")
        finally:
            task.reader_done = True
            wake.set()

    async def all_logs(self, run: RunResponse) -> None:
        """Every task's logs as they are now, in DAG order, each followed by the task's status
        (``run logs RUN`` without ``--follow``); reused tasks are marked, their logs are in the
        run they come from."""
        tasks: dict[str, TaskView] = {}
        _update(run, tasks)
        for t in in_order(tasks.values()):
            if t.started and not t.reused:
                await self.task_logs(run, t.id, t.name, follow=False)
            if t.status != "running":
                self.write(f"==> {self._prefix(run, t.name)}{t.outcome()}")

    async def task_logs(self, run: RunResponse, task_id: str, task_name: str, *, follow: bool) -> None:
        """Print a task's setup log, then each step's log in order (following them if asked).
        A log that cannot be read is reported in one line; the other tasks go on."""
        prefix = self._prefix(run, task_name)

        def out(text: str) -> None:
            self.write(prefix_lines(prefix, text))

        try:
            await self._task_logs(run.id, task_id, out, follow=follow)
        except ClientError as exc:
            out(f"(logs unavailable: {exc.message})")

    def _soon(self) -> Backoff:
        """Waits for what is about to happen (the next step to start, its log to be served):
        short at first, so a follower does not miss the step's first lines by a poll interval."""
        return Backoff(initial=0.05, maximum=self.poll_interval, jitter=0.1)

    async def _task_logs(self, run_id: str, task_id: str, out: Writer, *, follow: bool) -> None:
        task = await self.gw.get_task(run_id, task_id)
        await self._one_log(run_id, task_id, out, None, "setup", follow)
        index = 0
        wait = self._soon()
        while True:
            if index >= len(task.steps):
                return
            step = task.steps[index]
            if step.phase in ("notstarted", ""):
                if task.status in TASK_FINISHED_STATUSES or not follow:
                    return  # the task ended before reaching this step
                await asyncio.sleep(wait.next())
                task = await self.gw.get_task(run_id, task_id)
                continue
            wait.reset()
            title = step.name or step.type
            await self._one_log(run_id, task_id, out, index, f"step {index}: {title}", follow)
            task = await self._step_result(run_id, task_id, out, index, follow)
            index += 1

    async def step_log(self, run_id: str, task_id: str, *, step: int | None, follow: bool) -> None:
        """One step's (or, with ``step`` None, the setup's) log without prefix; when following,
        waits for a step that has not started yet."""
        await self._one_log(run_id, task_id, self.write, step, None, follow)

    async def _step_result(self, run_id: str, task_id: str, out: Writer, index: int, follow: bool) -> RunTaskResponse:
        """Report how a step ended (waiting briefly for the status to catch up with the log)."""
        task = await self.gw.get_task(run_id, task_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.log_wait if follow else 0)
        wait = self._soon()
        while task.steps[index].phase == "running" and loop.time() < deadline:
            await asyncio.sleep(wait.next())
            task = await self.gw.get_task(run_id, task_id)
        step = task.steps[index]
        if step.phase != "running":
            status = f" (exit status {step.exit_status})" if step.exit_status is not None else ""
            took = duration(step.start_time, step.end_time)
            out(f"--- step {index}: {step.phase}{status}" + (f" in {took}" if took else ""))
        return task

    async def _one_log(
        self, run_id: str, task_id: str, out: Writer, step: int | None, title: str | None, follow: bool
    ) -> None:
        """One log (``step`` None = setup), waiting for it to exist when following."""
        if title is not None:
            out(f"--- {title}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.log_wait
        wait = self._soon()
        while True:
            lines = LineBuffer(out, "")
            try:
                async for chunk in self.gw.stream_log(run_id, task_id, step=step, setup=step is None, follow=follow):
                    lines.feed(chunk)
                lines.close()
                return
            except NotExist:
                lines.close()
                if lines.emitted:
                    return  # it existed and was read: a stream that ends is the step's end
                # The executor may not serve it yet, or the archive is being written: retry a while.
                task = await self.gw.get_task(run_id, task_id)
                # No waiting for a step that does not exist, or whose log was archived (then deleted).
                hopeless = step is not None and (step >= len(task.steps) or task.steps[step].log_archived)
                if not follow or hopeless or (task.status in TASK_FINISHED_STATUSES and loop.time() > deadline):
                    out("(no log)")
                    return
                await asyncio.sleep(wait.next())


def _update(run: RunResponse, tasks: dict[str, TaskView]) -> None:
    """Bring the task views up to date with the run as just read."""
    names = {tid: t.name for tid, t in run.tasks.items()}
    enqueued = parse_time(run.enqueue_time)
    for tid, t in run.tasks.items():
        view = tasks.get(tid)
        if view is None:
            ended = parse_time(t.end_time)
            view = tasks[tid] = TaskView(
                tid, t.name, t.level, depends=sorted(names.get(d, d) for d in _depends(t.depends)),
                # A restart keeps its source run's successful tasks as they were: ended before
                # this run was even queued.
                reused=ended is not None and enqueued is not None and ended < enqueued,
            )
        view.status, view.start_time, view.end_time = t.status, t.start_time, t.end_time
        view.waiting_approval, view.approved = t.waiting_approval, t.approved


def _depends(raw: object) -> list[str]:
    """Task ids a task depends on (the wire form is a map keyed by task id, or a list)."""
    if isinstance(raw, dict):
        return [str(k) for k in raw]
    if isinstance(raw, list):
        return [str(d.get("task_id", "")) if isinstance(d, dict) else str(d) for d in raw]
    return []


def live_terminal(runs: int) -> bool:
    """Whether to show the live view: one run, stdout a terminal that can move its cursor."""
    return runs == 1 and sys.stdout.isatty() and os.environ.get("TERM", "") not in ("", "dumb")


async def _ticks(view: LiveView, interval: float = 0.12) -> None:
    while True:
        await asyncio.sleep(interval)
        view.tick()


def interrupted_message(following: dict[str, RunResponse]) -> str:
    """What a Ctrl-C during a follow leaves behind (``RunFollower.following``): the runs keep
    running; how to get back to them or stop them."""
    runs = [r for r in following.values() if not r.finished]
    if not runs:
        return ""
    lines = []
    for r in runs:
        ref = run_ref(r)
        lines += [f"Stopped following run {r.name} #{r.counter} ({r.id}): it keeps running on the gateway.",
                  f"  follow it again: agola run logs {ref} -f",
                  f"  stop it:         agola run stop {ref}"]
    return "\n".join(lines)


async def newest_runs_of(gw: GatewayClient, group: str, known: set[str], commit_sha: str, timeout: float,
                         poll_interval: float = 0.5) -> list[str]:
    """Ids of runs of ``group`` that were not in ``known`` and carry ``commit_sha``, oldest first,
    waiting up to ``timeout`` for the first to show up (the runs list may lag behind creation)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        rows = await gw.list_runs(group, limit=40)
        found = [r.id for r in rows if r.id not in known and r.annotations.get("commit_sha", commit_sha) == commit_sha]
        if found or loop.time() >= deadline:
            return list(reversed(found))
        await asyncio.sleep(poll_interval)
