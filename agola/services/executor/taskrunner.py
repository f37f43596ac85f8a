"""Runs one executor task: setup (pod), steps in order, status, logs, stop and timeout.

This is the in-process API the executor role builds on::

    runner = TaskRunner(task_id, spec_data, driver, executor_id=..., data_dir=..., store=...,
                        on_status=report)
    status = await runner.run()          # returns when the task is finished
    runner.stop()                        # from elsewhere: kills the pod, running step -> stopped
    runner.logs                          # live TaskLogs (follow a step's log while it runs)

Semantics follow the reference's ``executeTask`` (spec §7.4): setup log messages, the first
unsuccessful step ends the task and later steps stay ``notstarted``. A stop request marks the
running step and the task ``stopped``; a task timeout (``task_timeout_interval``, v0.8.0) marks the
running step ``stopped`` and the task ``failed`` with ``timedout``, and says so in the logs.
"""

from __future__ import annotations

import asyncio
import inspect
import shutil
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from agola.errors import AgolaError
from agola.services.executor.drivers.base import (
    ContainerSpec,
    Driver,
    Pod,
    PodSpec,
    RegistryCredentials,
    TmpfsMount,
    split_entrypoint,
)
from agola.services.executor.logs import DEFAULT_MAX_LOG_SIZE, LogFile, TaskLogs
from agola.services.executor.masking import StreamMasker
from agola.services.executor.steps import (
    DEFAULT_MAX_ARCHIVE_SIZE,
    DEFAULT_WORKING_DIR,
    RenderKey,
    StepRunner,
    default_render_key,
    step_user,
)
from agola.services.executor.store import ArchiveStore
from agola.types.runservice import (
    ExecutorTaskPhase,
    ExecutorTaskSpecData,
    ExecutorTaskStatus,
    ExecutorTaskStepStatus,
)
from agola.util.log import get_logger

log = get_logger(__name__)

OnStatus = Callable[[ExecutorTaskStatus], "Awaitable[None] | None"]


def pod_spec_for(task_id: str, spec: ExecutorTaskSpecData, executor_id: str) -> PodSpec:
    """The pod a task asks for (§7.4: container env, user, privileged, tmpfs volumes, entrypoint)."""
    return PodSpec(
        task_id=task_id,
        executor_id=executor_id,
        arch=spec.arch or "",
        exec_user=step_user(spec),
        working_dir=spec.working_dir or DEFAULT_WORKING_DIR,
        containers=tuple(
            ContainerSpec(
                image=c.image,
                env=dict(c.environment),
                entrypoint=split_entrypoint(c.entrypoint),
                user=c.user,
                privileged=c.privileged,
                # Every volume is a tmpfs; size 0 = the engine's default.
                tmpfs=tuple(TmpfsMount(v.path, v.tmpfs.size if v.tmpfs else 0) for v in c.volumes),
            )
            for c in spec.containers
        ),
        registry_auth={
            registry: RegistryCredentials(username=a.username, password=a.password, auth=a.auth)
            for registry, a in spec.docker_registries_auth.items()
        },
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _step_started(step: ExecutorTaskStepStatus) -> ExecutorTaskStepStatus:
    return attrs.evolve(step, phase=ExecutorTaskPhase.RUNNING, start_time=_now())


def _step_finished(step: ExecutorTaskStepStatus, phase: ExecutorTaskPhase, exit_status: int | None = None) -> ExecutorTaskStepStatus:
    return attrs.evolve(step, phase=phase, end_time=_now(), exit_status=exit_status)


class TaskRunner:
    def __init__(
        self,
        task_id: str,
        spec: ExecutorTaskSpecData,
        driver: Driver,
        *,
        executor_id: str,
        data_dir: Path,
        store: ArchiveStore,
        render_key: RenderKey = default_render_key,
        on_status: OnStatus | None = None,
        keep_pod: bool = False,
        max_log_size: int = DEFAULT_MAX_LOG_SIZE,
        max_archive_size: int = DEFAULT_MAX_ARCHIVE_SIZE,
    ) -> None:
        self.task_id = task_id
        self.spec = spec
        self.driver = driver
        self.executor_id = executor_id
        self.task_dir = Path(data_dir) / "tasks" / task_id
        self.store = store
        self.render_key = render_key
        self.on_status = on_status
        self.keep_pod = keep_pod  # tests and debugging: leave the pod for inspection
        self.max_log_size = max_log_size
        self.max_archive_size = max_archive_size
        # Replaced (never mutated) on each change: a reported status stays as it was sent.
        self.status = ExecutorTaskStatus(id=task_id, steps=[ExecutorTaskStepStatus() for _ in spec.steps])
        self.logs: TaskLogs | None = None
        self.pod: Pod | None = None
        self._stop_requested = False
        self._current: asyncio.Task[Any] | None = None
        self._current_log: LogFile | None = None
        self._finished = asyncio.Event()

    # ------------------------------------------------------------------------------ public API

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    async def wait(self) -> ExecutorTaskStatus:
        await self._finished.wait()
        return self.status

    def stop(self, *, timedout: bool = False) -> None:
        """Stop the task now: kill the pod; the running step ends ``stopped``."""
        if self._stop_requested or self.finished:
            return
        self._stop_requested = True
        self._update(timedout=timedout)
        if self._current is not None and not self._current.done():
            self._current.cancel()
        if self.pod is not None:
            asyncio.get_running_loop().create_task(self._kill_pod())

    async def run(self) -> ExecutorTaskStatus:
        try:
            await self._run()
        finally:
            if self.logs is not None:
                self.logs.close()
            self._finished.set()
        return self.status

    # ------------------------------------------------------------------------------- internals

    def _update(self, **changes: Any) -> None:
        self.status = attrs.evolve(self.status, **changes)

    def _set_setup_step(self, step: ExecutorTaskStepStatus) -> None:
        self._update(setup_step=step)

    def _set_step(self, index: int, step: ExecutorTaskStepStatus) -> None:
        steps = list(self.status.steps)
        steps[index] = step
        self._update(steps=steps)

    async def _report(self) -> None:
        if self.on_status is None:
            return
        try:
            result = self.on_status(self.status)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:  # noqa: BLE001 - reporting must not break the task
            log.warning("task status report failed", task_id=self.task_id, error=str(exc))

    async def _kill_pod(self) -> None:
        if self.pod is not None:
            try:
                await self.pod.stop()
            except Exception as exc:  # noqa: BLE001
                log.warning("cannot stop pod", pod_id=self.pod.id, error=str(exc))

    def _end(self, phase: ExecutorTaskPhase) -> None:
        self._update(phase=phase, end_time=_now())

    async def _run(self) -> None:
        if self._stop_requested:
            self._end(ExecutorTaskPhase.CANCELLED)
            await self._report()
            return
        shutil.rmtree(self.task_dir, ignore_errors=True)
        self.task_dir.mkdir(parents=True)
        self.logs = TaskLogs(self.task_dir, self.spec.masked_values, self.max_log_size)
        self._update(phase=ExecutorTaskPhase.RUNNING, start_time=_now(), setup_step=_step_started(self.status.setup_step))
        await self._report()
        timer = None
        timeout = self.spec.task_timeout_interval
        if timeout:
            timer = asyncio.get_running_loop().call_later(timeout.total_seconds(), self._on_timeout)
        try:
            runner = await self._setup(self.logs.setup)
            if runner is None:
                return
            await self._steps(runner)
        finally:
            if timer is not None:
                timer.cancel()
            # Logs complete and status final are reported first; removing the pod can follow.
            self.logs.close()
            await self._report()
            await self._cleanup()

    def _on_timeout(self) -> None:
        if self.finished or self._stop_requested:
            return
        timeout = self.spec.task_timeout_interval.total_seconds() if self.spec.task_timeout_interval else 0.0
        message = f"Task timed out after {timeout:g}s: stopping it."
        for target in (self._current_log, self.logs.setup if self.logs else None):
            if target is not None and not target.finished:
                target.write_nowait(message.encode() + b"\n")
                break
        self.stop(timedout=True)

    async def _setup(self, setup_log: LogFile) -> StepRunner | None:
        # A task of its own, so that a stop or a timeout can interrupt a slow pull or start.
        self._current = asyncio.create_task(self._prepare(setup_log))
        try:
            await asyncio.wait({self._current})
        except asyncio.CancelledError:
            await _cancel_and_settle(self._current)  # so a pod created meanwhile is known and removed
            raise
        task, self._current = self._current, None
        if task.cancelled() or self._stop_requested:
            reason = "task timed out during setup" if self.status.timedout else "task stopped during setup"
            await setup_log.line(reason[0].upper() + reason[1:] + ".")
            await self._setup_failed(ExecutorTaskPhase.STOPPED, reason)
            return None
        exc = task.exception()
        if isinstance(exc, _SetupFailed):
            await setup_log.line(str(exc))
            await self._setup_failed(ExecutorTaskPhase.FAILED, str(exc))
            return None
        if exc is not None:  # e.g. the engine went away: a failed setup, not an executor crash
            await setup_log.line(f"Pod failed to start. Error: {exc}")
            await self._setup_failed(ExecutorTaskPhase.FAILED, str(exc))
            return None
        self._set_setup_step(_step_finished(self.status.setup_step, ExecutorTaskPhase.SUCCESS))
        setup_log.close()
        await self._report()
        runner: StepRunner = task.result()
        return runner

    async def _prepare(self, setup_log: LogFile) -> StepRunner:
        spec = self.spec
        # Whether privileged containers are allowed is the driver's call (its config), so the
        # setup log gets the driver's refusal message (PRIVILEGED_REFUSED for Docker).
        await setup_log.line("Starting pod.")
        try:
            self.pod = await self.driver.create_pod(pod_spec_for(self.task_id, spec, self.executor_id), setup_log.write)
        except (AgolaError, OSError) as exc:
            raise _SetupFailed(f"Pod failed to start. Error: {exc}") from exc
        await setup_log.line("Pod started.")
        working_dir = spec.working_dir or DEFAULT_WORKING_DIR
        user = step_user(spec)
        await setup_log.line(f'Creating working dir "{working_dir}".')
        try:
            working_dir = await self.pod.make_working_dir(working_dir, user)
        except AgolaError as exc:
            raise _SetupFailed(f'Failed to create working dir "{working_dir}". Error: {exc}') from exc
        home = await self.pod.home_dir(user) if "~" in "".join(_tilde_paths(spec)) else "/"
        runner = StepRunner(
            task_id=self.task_id, spec=spec, pod=self.pod, task_dir=self.task_dir, store=self.store,
            working_dir=working_dir, home=home, render_key=self.render_key, arch=spec.arch or "",
            max_archive_size=self.max_archive_size,
        )
        return runner

    async def _setup_failed(self, phase: ExecutorTaskPhase, reason: str) -> None:
        self._set_setup_step(_step_finished(self.status.setup_step, phase))
        # Shown to users by the API (an engine error may quote the task's environment).
        masker = StreamMasker(self.spec.masked_values)
        self._update(fail_error=(masker.feed(reason.encode()) + masker.flush()).decode(errors="replace"))
        self._end(ExecutorTaskPhase.FAILED if self.status.timedout else phase)
        return None

    async def _steps(self, runner: StepRunner) -> None:
        assert self.logs is not None
        for index, step in enumerate(self.spec.steps):
            if self._stop_requested:
                break
            step_log = self.logs.step(index)
            self._current_log = step_log
            self._set_step(index, _step_started(self.status.steps[index]))
            await self._report()
            self._current = asyncio.create_task(runner.run_step(index, step, step_log))
            try:
                await asyncio.wait({self._current})
            except asyncio.CancelledError:
                await _cancel_and_settle(self._current)
                raise
            if self._current.cancelled() or self._stop_requested:
                await step_log.line("Task stopped." if not self.status.timedout else "Step stopped: task timed out.")
                phase, rc = ExecutorTaskPhase.STOPPED, None
            elif self._current.exception() is not None:
                exc = self._current.exception()
                await step_log.line(f"Error: {exc}")
                phase, rc = ExecutorTaskPhase.FAILED, None
            else:
                rc = self._current.result()
                phase = ExecutorTaskPhase.SUCCESS if rc == 0 else ExecutorTaskPhase.FAILED
            self._set_step(index, _step_finished(self.status.steps[index], phase, rc))
            step_log.close()
            self._current = None
            self._current_log = None
            if phase != ExecutorTaskPhase.SUCCESS:
                break
            await self._report()
        if self.status.timedout:
            self._end(ExecutorTaskPhase.FAILED)
        elif self._stop_requested:
            self._end(ExecutorTaskPhase.STOPPED)
        elif all(s.phase == ExecutorTaskPhase.SUCCESS for s in self.status.steps):
            self._end(ExecutorTaskPhase.SUCCESS)
        else:
            self._end(ExecutorTaskPhase.FAILED)

    async def _cleanup(self) -> None:
        if self.pod is not None and not self.keep_pod:
            try:
                await asyncio.shield(self.pod.remove())
            except Exception as exc:  # noqa: BLE001 - the orphan cleaner will retry
                log.warning("cannot remove pod", pod_id=self.pod.id, error=str(exc))


class _SetupFailed(Exception):
    pass


async def _cancel_and_settle(task: asyncio.Task[Any], grace: float = 10.0) -> None:
    """Cancel ``task`` and give it a moment to run its cleanup (we are being cancelled ourselves)."""
    task.cancel()
    await asyncio.wait({task}, timeout=grace)


def _tilde_paths(spec: ExecutorTaskSpecData) -> list[str]:
    """Step paths that may need the home dir (looked up only when one starts with ``~``)."""
    paths = []
    for step in spec.steps:
        for attr in ("working_dir", "dest_dir"):
            value = getattr(step, attr, "")
            if value.startswith("~"):
                paths.append(value)
        for content in getattr(step, "contents", ()):
            if content.source_dir.startswith("~"):
                paths.append(content.source_dir)
    return paths

