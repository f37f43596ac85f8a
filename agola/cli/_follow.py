"""Following a run live in the terminal: task status changes and every step's log as it is
written, until the run ends (``agola run logs --follow``, ``agola directrun start --follow``).

Task statuses come from polling the run (the gateway has no per-task event stream); logs are
streamed with ``follow`` so lines show up as the step prints them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from agola.client import ClientError, NotExist, RunResponse, RunTaskResponse
from agola.client.types import TASK_FINISHED_STATUSES

if TYPE_CHECKING:
    from agola.client import GatewayClient

Writer = Callable[[str], None]
MAX_LINE = 64 * 1024
# Task statuses of tasks that never ran: they have no logs.
_NO_LOGS = frozenset({"notstarted", "skipped", "cancelled"})


class LineBuffer:
    """Turns arbitrary byte chunks into prefixed lines; a trailing ``\\r`` (tty output) is dropped."""

    def __init__(self, write: Writer, prefix: str) -> None:
        self.write = write
        self.prefix = prefix
        self.pending = b""
        self.emitted = False

    def feed(self, chunk: bytes) -> None:
        self.pending += chunk
        *lines, self.pending = self.pending.split(b"\n")
        for line in lines:
            self._emit(line)
        if len(self.pending) > MAX_LINE:  # output without newlines: show it anyway, in pieces
            self._emit(self.pending)
            self.pending = b""

    def close(self) -> None:
        if self.pending:
            self._emit(self.pending)
            self.pending = b""

    def _emit(self, line: bytes) -> None:
        self.emitted = True
        self.write(self.prefix + line.rstrip(b"\r").decode(errors="replace"))


@attrs.define
class RunFollower:
    gw: GatewayClient
    write: Writer
    poll_interval: float = 1.0
    # How long a log that is not there yet (executor still starting, archive being fetched) is
    # waited for once its task has finished.
    log_wait: float = 15.0
    prefix_run: bool = False

    def _prefix(self, run: RunResponse | None, task_name: str) -> str:
        if self.prefix_run and run is not None:
            return f"[{run.name}/{task_name}] "
        return f"[{task_name}] "

    async def follow(self, run_id: str) -> RunResponse:
        """Print status changes and logs until the run has finished; return the final run."""
        streams: dict[str, asyncio.Task[None]] = {}
        seen_status: dict[str, str] = {}
        announced_approval: set[str] = set()
        phase = ""
        try:
            while True:
                run = await self.gw.get_run(run_id)
                # A finished run is reported once, by the summary below, after its tasks' ends.
                if run.phase != phase and not run.finished:
                    phase = run.phase
                    self.write(f"==> run {run.name} #{run.counter} ({run.id}): {run.phase}")
                for task in sorted(run.tasks.values(), key=lambda t: (t.level, t.name)):
                    previous = seen_status.get(task.id)
                    if previous != task.status:
                        seen_status[task.id] = task.status
                        if previous is not None or task.status != "notstarted":
                            self.write(f"==> {self._prefix(run, task.name)}{task.status}")
                    if task.waiting_approval and not task.approved and task.id not in announced_approval:
                        announced_approval.add(task.id)
                        self.write(f"==> {self._prefix(run, task.name)}waiting for approval: "
                                   f"agola run approve {run.id} {task.name}")
                    if task.id not in streams and task.status not in _NO_LOGS:
                        streams[task.id] = asyncio.create_task(self.task_logs(run, task.id, task.name, follow=True))
                if run.finished:
                    break
                await asyncio.sleep(self.poll_interval)
            if streams:
                await asyncio.wait(list(streams.values()), timeout=self.log_wait + 5 * self.poll_interval)
            for err in run.setup_errors:
                self.write(f"setup error: {err}")
            self.write(f"==> run {run.name} #{run.counter} ({run.id}): {run.phase}, result {run.result}")
            return run
        finally:
            for t in streams.values():
                t.cancel()
            await asyncio.gather(*streams.values(), return_exceptions=True)

    async def task_logs(self, run: RunResponse, task_id: str, task_name: str, *, follow: bool) -> None:
        """Print a task's setup log, then each step's log in order (following them if asked).
        A log that cannot be read is reported in one line; the other tasks go on."""
        try:
            await self._task_logs(run, task_id, task_name, follow=follow)
        except ClientError as exc:
            self.write(f"{self._prefix(run, task_name)}(logs unavailable: {exc.message})")

    async def _task_logs(self, run: RunResponse, task_id: str, task_name: str, *, follow: bool) -> None:
        run_id = run.id
        prefix = self._prefix(run, task_name)
        task = await self.gw.get_task(run_id, task_id)
        await self._one_log(run_id, task_id, prefix, None, "setup", follow)
        index = 0
        while True:
            if index >= len(task.steps):
                return
            step = task.steps[index]
            if step.phase in ("notstarted", ""):
                if task.status in TASK_FINISHED_STATUSES or not follow:
                    return  # the task ended before reaching this step
                await asyncio.sleep(self.poll_interval)
                task = await self.gw.get_task(run_id, task_id)
                continue
            title = step.name or step.type
            await self._one_log(run_id, task_id, prefix, index, f"step {index}: {title}", follow)
            task = await self._step_result(run_id, task_id, prefix, index, follow)
            index += 1

    async def step_log(self, run_id: str, task_id: str, *, step: int | None, follow: bool) -> None:
        """One step's (or, with ``step`` None, the setup's) log without prefix; when following,
        waits for a step that has not started yet."""
        await self._one_log(run_id, task_id, "", step, None, follow)

    async def _step_result(self, run_id: str, task_id: str, prefix: str, index: int, follow: bool) -> RunTaskResponse:
        """Report how a step ended (waiting briefly for the status to catch up with the log)."""
        task = await self.gw.get_task(run_id, task_id)
        for _ in range(int(self.log_wait / self.poll_interval) if follow else 0):
            if task.steps[index].phase != "running":
                break
            await asyncio.sleep(self.poll_interval)
            task = await self.gw.get_task(run_id, task_id)
        step = task.steps[index]
        if step.phase != "running":
            status = f" (exit status {step.exit_status})" if step.exit_status is not None else ""
            self.write(f"{prefix}--- step {index}: {step.phase}{status}")
        return task

    async def _one_log(
        self, run_id: str, task_id: str, prefix: str, step: int | None, title: str | None, follow: bool
    ) -> None:
        """One log (``step`` None = setup), waiting for it to exist when following."""
        if title is not None:
            self.write(f"{prefix}--- {title}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.log_wait
        while True:
            lines = LineBuffer(self.write, prefix)
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
                    self.write(f"{prefix}(no log)")
                    return
                await asyncio.sleep(self.poll_interval)


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
