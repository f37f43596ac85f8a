"""The executor's control loop (spec §7.3, §7.4): registration, task intake, status reports, cleanup.

``ExecutorAgent`` connects the task runner (``taskrunner.TaskRunner``) to the runservice:

* **heartbeat** every ``heartbeat_interval``: the ``Executor`` record (listen URL, archs, labels,
  privileged allowed, active task limit, active tasks);
* **task intake**: tasks pushed by the runservice (``POST /api/v1alpha/executor``, see ``api``)
  and, as a fallback, polled (``GET .../executor/<id>/tasks``) every ``poll_interval``. At most
  ``active_tasks_limit`` tasks run at once (a task holds its slot until its final status, not
  until its pod is removed; a freed slot is announced at once by a heartbeat, so the runservice
  pushes the next task): a task arriving while the executor is full is refused and left to a poll,
  made as soon as a slot frees up (only then: a poll lists every task of this executor with its
  spec data, and the pushes keep the slots full without it). A task the
  runservice believes running but this executor does not know (it restarted) is reported
  ``failed``; a not started task the runservice asks to stop is reported ``cancelled``; a running
  one is stopped;
* **status reports**: each status change of a task is sent at once, without holding the task up
  (reports are coalesced per task; a failed send is retried every ``status_interval``). A task is
  forgotten once its final status is stored by the runservice;
* **orphan pods**: pods labelled with this executor's id whose task is not running here are
  removed at start and every ``orphans_interval``;
* **task data**: ``<dataDir>/tasks/<id>`` (logs, workspace archives: what the runservice fetches
  through the executor API) is deleted once the runservice no longer knows the task.

Each periodic job runs on its own ``agola.util.loops.LoopRunner`` (``runners``, by name): a pass at
start, then every interval; a failed pass is logged (``loop pass failed``) and retried after a
backoff capped at the job's interval. The loops are per instance: no coordination lock.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from agola.errors import BadRequest, NotExist
from agola.roleclients.runservice import RunserviceClient
from agola.services.executor.drivers.base import Driver
from agola.services.executor.logs import DEFAULT_MAX_LOG_SIZE, TaskLogs
from agola.services.executor.steps import DEFAULT_MAX_ARCHIVE_SIZE, RenderKey, default_render_key
from agola.services.executor.store import ArchiveStore
from agola.services.executor.taskrunner import TaskRunner
from agola.types.runservice import (
    Arch,
    Executor,
    ExecutorTask,
    ExecutorTaskPhase,
    ExecutorTaskSpecData,
    ExecutorTaskStatus,
    ExecutorTaskStepStatus,
)
from agola.util.aio import cancel_and_wait
from agola.util.log import get_logger
from agola.util.loops import LoopRunner, stop_all

log = get_logger(__name__)

LOST_TASK_ERROR = "the executor restarted while the task was running: the task was lost"
# Task ids become directory names: only plain names are accepted.
_SAFE_TASK_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$")
# Ids of tasks finished and forgotten are kept this long, so a stale task list never restarts them.
FORGET_AFTER = 600.0


@attrs.frozen(kw_only=True)
class AgentOptions:
    """Loop periods (seconds). Tests shrink them."""

    heartbeat_interval: float = 2.0
    poll_interval: float = 2.0
    status_interval: float = 2.0
    orphans_interval: float = 5.0
    data_clean_interval: float = 60.0
    # On a graceful stop, running tasks are stopped and get this long to report it.
    stop_grace: float = 10.0


@attrs.frozen(kw_only=True)
class AgentSettings:
    """Who this executor is and what it offers (from ``config.executor``)."""

    executor_id: str
    listen_url: str
    data_dir: Path
    labels: Mapping[str, str] = attrs.field(factory=dict)
    active_tasks_limit: int = 2
    allow_privileged_containers: bool = False
    max_log_size: int = DEFAULT_MAX_LOG_SIZE
    max_archive_size: int = DEFAULT_MAX_ARCHIVE_SIZE


def check_task_id(task_id: str) -> str:
    if not _SAFE_TASK_ID.match(task_id or "") or task_id in (".", ".."):
        raise BadRequest(f"invalid task id {task_id!r}")
    return task_id


@attrs.frozen
class AgentJob:
    """One periodic job of the agent, as ``LoopRunner`` runs it: a name and one pass."""

    name: str
    run_once: Callable[[], Coroutine[Any, Any, object]]


@attrs.define
class TaskEntry:
    """A task this executor runs (or ran and has not yet reported as finished)."""

    runner: TaskRunner
    task: ExecutorTask  # as received: its spec (executor, run, stop) goes back with each report
    started_at: float
    job: asyncio.Task[Any] | None = None
    dirty: bool = True  # a status change not yet stored by the runservice
    final_sent: bool = False
    freed: bool = False  # its slot was announced free (heartbeat and poll woken)
    heartbeat_due: bool = False  # the heartbeat announcing its free slot follows its final report
    sender: asyncio.Task[None] | None = None
    lock: asyncio.Lock = attrs.field(factory=asyncio.Lock)

    @property
    def running(self) -> bool:
        return not self.runner.finished

    @property
    def active(self) -> bool:
        """Holds a task slot: not finished yet. A finished task whose pod is still being removed
        does not: the next task starts meanwhile (as the run it belongs to goes on)."""
        return not self.runner.status.phase.is_finished

    @property
    def settled(self) -> bool:
        """Finished, and its final status stored by the runservice: nothing left to report."""
        return self.final_sent and not self.dirty and not self.running


class ExecutorAgent:
    def __init__(
        self,
        settings: AgentSettings,
        *,
        client: RunserviceClient,
        driver: Driver,
        store: ArchiveStore,
        options: AgentOptions | None = None,
        render_key: RenderKey = default_render_key,
    ) -> None:
        self.settings = settings
        self.client = client
        self.driver = driver
        self.store = store
        self.options = options or AgentOptions()
        self.render_key = render_key
        self.tasks: dict[str, TaskEntry] = {}
        self._forgotten: dict[str, float] = {}
        # A task was refused for want of a slot since the last poll began: poll when one frees.
        self._refused_busy = False
        self._background: set[asyncio.Task[Any]] = set()
        self._stopping = False
        o = self.options
        self.runners: dict[str, LoopRunner] = {
            runner.name: runner
            for runner in (
                self._runner("executor-heartbeat", self.heartbeat, o.heartbeat_interval),
                self._runner("executor-poll", self.poll, o.poll_interval),
                self._runner("executor-status", self.resend_statuses, o.status_interval),
                self._runner("executor-orphans", self.remove_orphans, o.orphans_interval),
                self._runner("executor-taskdata", self.clean_task_data, o.data_clean_interval),
            )
        }
        self._poll = self.runners["executor-poll"]

    @staticmethod
    def _runner(name: str, job: Callable[[], Coroutine[Any, Any, object]], interval: float) -> LoopRunner:
        # A failed pass is retried after a backoff capped at the interval (the period of the job).
        return LoopRunner(AgentJob(name, job), interval, max_backoff=interval)

    @property
    def id(self) -> str:
        return self.settings.executor_id

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    # ------------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        (self.data_dir / "tasks").mkdir(parents=True, exist_ok=True)
        # Nothing runs yet: every pod of this executor id was left by a previous process.
        await self.remove_orphans()
        for runner in self.runners.values():
            runner.start()  # the first pass of each (the heartbeat registers us) runs at once

    async def stop(self) -> None:
        """Stop the loops, stop running tasks (they report ``stopped``), then forget everything."""
        self._stopping = True
        await stop_all(list(self.runners.values()))
        jobs = [e.job for e in self.tasks.values() if e.job is not None and not e.job.done()]
        for entry in self.tasks.values():
            entry.runner.stop()
        if jobs:
            await asyncio.wait(jobs, timeout=self.options.stop_grace)
        await cancel_and_wait(jobs)
        try:
            async with asyncio.timeout(self.options.stop_grace):
                await self.resend_statuses()
        except Exception as exc:  # noqa: BLE001 - stopping anyway (TimeoutError included)
            log.warning("final status reports failed", executor=self.id, error=repr(exc))
        await cancel_and_wait(self._background)

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------------------- heartbeat

    def active_tasks(self) -> int:
        return sum(1 for e in self.tasks.values() if e.active)

    def executor_record(self) -> Executor:
        archs = [Arch(a) for a in self.driver.archs() if a in Arch._value2member_map_]
        return Executor(
            id=self.id,
            listen_url=self.settings.listen_url,
            archs=archs,
            labels=dict(self.settings.labels),
            allow_privileged_containers=self.settings.allow_privileged_containers,
            active_tasks_limit=self.settings.active_tasks_limit,
            active_tasks=self.active_tasks(),
            dynamic=False,
            executor_group=self.id,
        )

    async def heartbeat(self) -> None:
        await self.client.executor_heartbeat(self.executor_record())

    # ------------------------------------------------------------------------------ task intake

    def wake_poll(self) -> None:
        """A poll as soon as the current one (if any) is over."""
        self._poll.wake()

    def _slot_freed(self) -> None:
        """A task slot freed up: poll now if a task was refused for want of one (it waits in the
        runservice's listing); otherwise the runservice pushes the next task itself."""
        if self._refused_busy:
            self.wake_poll()

    async def poll(self) -> None:
        """Fetch this executor's tasks and act on each; stop the running ones no longer listed."""
        asked_at = time.monotonic()
        self._refused_busy = False  # a task this listing shows is refused again if still no room
        listed = await self.client.executor_tasks(self.id)
        seen = set()
        for et, data in listed:
            seen.add(et.id)
            try:
                self.receive(et, data)
            except Exception as exc:  # noqa: BLE001 - one bad task must not block the others
                log.warning("task refused", executor=self.id, task=et.id, error=repr(exc))
        for task_id, entry in list(self.tasks.items()):
            if task_id not in seen and entry.active and entry.started_at < asked_at:
                log.info("task no longer assigned to this executor: stopping it", task=task_id)
                entry.runner.stop()

    def receive(self, et: ExecutorTask, data: ExecutorTaskSpecData | None) -> str:
        """Act on a task sent by the runservice (pushed or polled), with its spec data (None when
        its run is gone). Synchronous: the decision is taken without yielding, so two deliveries
        of one task never both start it. Returns what was done (``started``, ``stopping``,
        ``busy``, ``lost``, ``cancelled``, ``ignored``)."""
        check_task_id(et.id)
        if et.spec.executor_id != self.id:
            raise BadRequest(f"task {et.id} is assigned to executor {et.spec.executor_id!r}, not {self.id!r}")
        entry = self.tasks.get(et.id)
        phase = et.status.phase
        if entry is not None:
            if et.spec.stop and entry.active:
                entry.runner.stop()
                return "stopping"
            return "ignored"
        if phase is ExecutorTaskPhase.RUNNING:
            # The runservice saw it start here, but no such task runs: this executor restarted.
            self._spawn(self._report_lost(et), f"executor-lost-{et.id}")
            return "lost"
        if phase is not ExecutorTaskPhase.NOT_STARTED or et.id in self._forgotten:
            return "ignored"
        if et.spec.stop:
            self._spawn(self._report_final(et, ExecutorTaskPhase.CANCELLED, "stopped before it started"),
                        f"executor-cancel-{et.id}")
            return "cancelled"
        if data is None or self._stopping:
            return "ignored"  # no spec data: its run is gone; stopping: let another executor take it
        if self.active_tasks() >= max(1, self.settings.active_tasks_limit):
            self._refused_busy = True
            return "busy"  # a later poll (woken when a slot frees) takes it
        self._start(et, data)
        return "started"

    def _start(self, et: ExecutorTask, spec: ExecutorTaskSpecData) -> None:
        runner = TaskRunner(
            et.id, spec, self.driver, executor_id=self.id, data_dir=self.data_dir, store=self.store,
            render_key=self.render_key, on_status=lambda _status: self._status_changed(et.id),
            max_log_size=self.settings.max_log_size, max_archive_size=self.settings.max_archive_size,
        )
        entry = TaskEntry(runner=runner, task=et, started_at=time.monotonic())
        self.tasks[et.id] = entry
        entry.job = asyncio.create_task(runner.run(), name=f"executor-task-{et.id}")
        entry.job.add_done_callback(lambda job: self._task_done(et.id, job))
        log.info("task started", executor=self.id, task=et.id, run=et.spec.run_id)

    def _task_done(self, task_id: str, job: asyncio.Task[Any]) -> None:
        if not job.cancelled() and job.exception() is not None:
            log.error("task runner crashed", task=task_id, exc_info=job.exception())
        entry = self.tasks.get(task_id)
        if entry is not None and not entry.runner.status.phase.is_finished:
            error = "executor error: the task runner ended without a result"
            entry.runner.status = ended(entry.runner.status, ExecutorTaskPhase.FAILED, error)
        if entry is not None and entry.final_sent and not entry.dirty:
            self._forget(task_id)
        else:
            self._status_changed(task_id)  # the final status, if not stored yet
        self._slot_freed()

    # -------------------------------------------------------------------------- status reports

    def _status_changed(self, task_id: str) -> None:
        entry = self.tasks.get(task_id)
        if entry is None:
            return
        entry.dirty = True
        if not entry.active and not entry.freed:
            # A slot is free: say so now (the runservice assigns no more than the active tasks
            # our heartbeat reports allow) and take a waiting task, instead of at the next passes.
            # The heartbeat goes right after the final report, not alongside it: the run's end is
            # written on that report, and a heartbeat (an executor write and a runs scheduler pass
            # in the runservice) in between only delayed it.
            entry.freed = True
            entry.heartbeat_due = True
            self._slot_freed()
        if entry.sender is None or entry.sender.done():
            entry.sender = asyncio.create_task(self._send(task_id), name=f"executor-report-{task_id}")
            self._background.add(entry.sender)
            entry.sender.add_done_callback(self._background.discard)

    async def _send(self, task_id: str) -> None:
        entry = self.tasks.get(task_id)
        if entry is None:
            return
        try:
            await self._send_dirty(task_id, entry)
        finally:
            if entry.heartbeat_due:  # sent, refused or failed: the slot is free all the same
                entry.heartbeat_due = False
                self.runners["executor-heartbeat"].wake()
        if entry.settled:
            self._forget(task_id)

    async def _send_dirty(self, task_id: str, entry: TaskEntry) -> None:
        async with entry.lock:
            while entry.dirty:
                entry.dirty = False
                status = entry.runner.status
                final = status.phase.is_finished
                try:
                    await self.client.update_executor_task_status(self.id, attrs.evolve(entry.task, status=status))
                except asyncio.CancelledError:
                    entry.dirty = True
                    raise
                except (BadRequest, NotExist) as exc:
                    # The runservice refuses it for good (e.g. it already fetched the finished
                    # task and dropped it): retrying would not help.
                    log.info("task status report refused", task=task_id, error=exc.message)
                    entry.final_sent = entry.final_sent or final
                    continue
                except Exception as exc:  # noqa: BLE001 - retried by the status loop
                    entry.dirty = True
                    log.info("task status report failed (will retry)", task=task_id, error=repr(exc))
                    return
                entry.final_sent = entry.final_sent or final

    def _forget(self, task_id: str) -> None:
        self.tasks.pop(task_id, None)
        now = time.monotonic()
        self._forgotten[task_id] = now
        for tid, at in list(self._forgotten.items()):
            if now - at > FORGET_AFTER:
                del self._forgotten[tid]

    async def resend_statuses(self) -> None:
        for task_id, entry in list(self.tasks.items()):
            if entry.settled:
                self._forget(task_id)
            elif entry.dirty or (not entry.running and not entry.final_sent):
                entry.dirty = True
                await self._send(task_id)

    async def _report_final(self, et: ExecutorTask, phase: ExecutorTaskPhase, error: str) -> None:
        status = final_status(et, phase, error)
        await self.client.update_executor_task_status(self.id, attrs.evolve(et, status=status))
        log.info("task reported", executor=self.id, task=et.id, phase=phase.value, reason=error)

    async def _report_lost(self, et: ExecutorTask) -> None:
        await self._report_final(et, ExecutorTaskPhase.FAILED, LOST_TASK_ERROR)

    # -------------------------------------------------------------------------------- cleanup

    async def remove_orphans(self) -> list[str]:
        """Remove this executor's pods that no running task owns. Ownership is checked *after*
        listing: a task registers before it creates its pod, so a pod being created is never taken
        for an orphan."""
        removed = []
        for info in await self.driver.list_pods(self.id):
            if self._owned(info.task_id, info.pod_id):
                continue
            await self.driver.remove_pod(info.pod_id)
            removed.append(info.pod_id)
        if removed:
            log.info("orphan pods removed", executor=self.id, pods=",".join(removed))
        return removed

    def _owned(self, task_id: str, pod_id: str) -> bool:
        entry = self.tasks.get(task_id)
        if entry is None or not entry.running:
            return False
        pod = entry.runner.pod
        return pod is None or pod.id == pod_id  # None: its pod is being created right now

    async def clean_task_data(self) -> list[str]:
        """Delete the local files of tasks the runservice no longer knows (logs fetched, run gone)."""
        removed: list[str] = []
        base = self.data_dir / "tasks"
        if not base.is_dir():
            return removed
        for path in base.iterdir():
            if path.name in self.tasks or not path.is_dir():
                continue
            try:
                await self.client.executor_task(self.id, path.name)
            except NotExist:
                await asyncio.to_thread(shutil.rmtree, path, True)
                removed.append(path.name)
        return removed

    # -------------------------------------------------------------------------- for the API

    def task_dir(self, task_id: str) -> Path:
        return self.data_dir / "tasks" / check_task_id(task_id)

    def live_logs(self, task_id: str) -> TaskLogs | None:
        entry = self.tasks.get(task_id)
        return entry.runner.logs if entry is not None else None


def ended(status: ExecutorTaskStatus, phase: ExecutorTaskPhase, error: str) -> ExecutorTaskStatus:
    """``status`` ended now with ``phase``: its running setup step and steps fail (a runner that
    crashed, a task lost by a restart or stopped before it started)."""
    now = datetime.now(UTC)

    def end(step: ExecutorTaskStepStatus) -> ExecutorTaskStepStatus:
        if step.phase is ExecutorTaskPhase.RUNNING:
            return attrs.evolve(step, phase=ExecutorTaskPhase.FAILED, end_time=now)
        return step

    return attrs.evolve(
        status,
        phase=phase,
        fail_error=error,
        setup_step=end(status.setup_step),
        steps=[end(s) for s in status.steps],
        end_time=now,
    )


def final_status(et: ExecutorTask, phase: ExecutorTaskPhase, error: str) -> ExecutorTaskStatus:
    """``et``'s status as last reported, ended now with ``phase``."""
    return ended(attrs.evolve(et.status, id=et.id), phase, error)


__all__ = [
    "LOST_TASK_ERROR",
    "AgentOptions",
    "AgentSettings",
    "ExecutorAgent",
    "check_task_id",
    "ended",
    "final_status",
]
