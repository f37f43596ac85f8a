"""Task logs (spec §3.9): archived in object storage once fetched, relayed live from the executor
while the step runs, fetched from the executor when the task ends.

Object paths: ``logs/<runTaskID>/data/setup.log``, ``logs/<runTaskID>/data/steps/<n>.log``, and
an empty marker ``logs/<runTaskID>/runs/<runID>`` for every run using these logs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import attrs

from agola.errors import BadRequest, NotExist
from agola.roleclients.base import ResponseStream
from agola.services.runservice.core import RunserviceCore
from agola.services.runservice.logic.fetching import log_archived, log_object_path, log_selector
from agola.types.runservice import Executor, Run, RunTask
from agola.types.stepquery import StepQuery
from agola.util.log import get_logger

log = get_logger(__name__)


@attrs.frozen
class LogRef:
    run: Run
    task: RunTask
    step: int | None  # None = setup step

    @property
    def object_path(self) -> str:
        return log_object_path(self.task.id, self.step)

    @property
    def archived(self) -> bool:
        return log_archived(self.task, self.step)



async def resolve_log(core: RunserviceCore, run_id: str, task_id: str, *, setup: bool, step: int | None) -> LogRef:
    if not run_id or not task_id:
        raise BadRequest("runid and taskid are required")
    stored = await core.store.get_run(run_id)
    if stored is None:
        raise NotExist(f"run {run_id} does not exist")
    task = stored.run.tasks.get(task_id)
    if task is None:
        raise NotExist(f"run {run_id} has no task {task_id}")
    return LogRef(stored.run, task, log_selector(task, setup=setup, step=step))


async def archived_log(core: RunserviceCore, ref: LogRef) -> AsyncIterator[bytes]:
    """The archived log, streamed; ``NotExist`` (before any byte) when it was never stored."""
    try:
        reader = await core.ost.read(ref.object_path)
    except NotExist:
        raise NotExist(f"no log for task {ref.task.id}") from None

    async def chunks() -> AsyncIterator[bytes]:
        async with reader:
            async for chunk in reader:
                yield chunk

    return chunks()


async def _task_executor(core: RunserviceCore, task_id: str) -> Executor:
    found = await core.store.get_executor_task(task_id)
    if found is None:
        raise NotExist(f"task {task_id} has no executor task (not started, or its log is gone)")
    executor = await core.store.get_executor(found[0].spec.executor_id)
    if executor is None:
        raise NotExist(f"executor of task {task_id} does not exist")
    return executor


async def live_log(core: RunserviceCore, ref: LogRef, follow: bool) -> AsyncIterator[bytes]:
    """Relay the executor's log stream. Opens the upstream response before returning, so errors
    (404, executor unreachable) surface before our response starts."""
    executor = await _task_executor(core, ref.task.id)
    stream = core.executor_client(executor).get_log(ref.task.id, StepQuery.of(ref.step, follow=follow))
    return await stream.open()


async def delete_log(core: RunserviceCore, ref: LogRef) -> None:
    if not ref.archived:
        raise BadRequest(f"log for task {ref.task.id} is not yet archived")
    try:
        await core.ost.delete(ref.object_path)
    except NotExist:
        raise NotExist(f"no log for task {ref.task.id}") from None


async def fetch_log(core: RunserviceCore, executor: Executor, task_id: str, step: int | None, object_path: str) -> bool:
    """Copy a finished log (``step`` None: the setup's) from the executor into ``object_path``,
    streamed. False when the executor has none."""
    return await _store(core, core.executor_client(executor).get_log(task_id, StepQuery.of(step)), object_path)


async def fetch_archive(core: RunserviceCore, executor: Executor, task_id: str, step: int, object_path: str) -> bool:
    """Copy a workspace archive from the executor into ``object_path``, streamed. False when missing."""
    return await _store(core, core.executor_client(executor).get_archive(task_id, step), object_path)


async def _store(core: RunserviceCore, stream: ResponseStream, object_path: str) -> bool:
    try:
        await stream.open()
    except NotExist:
        return False
    async with stream:
        await core.ost.write(object_path, stream, size=stream.content_length)
    return True
