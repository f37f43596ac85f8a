"""Task logs (spec §3.9): archived in object storage once fetched, relayed live from the executor
while the step runs, fetched from the executor when the task ends.

Object paths: ``logs/<runTaskID>/data/setup.log``, ``logs/<runTaskID>/data/steps/<n>.log``, and
an empty marker ``logs/<runTaskID>/runs/<runID>`` for every run using these logs.
"""

from __future__ import annotations

from typing import AsyncIterator

import aiohttp
import attrs

from agola.errors import BadRequest, NotExist, Unavailable
from agola.services.runservice.core import RunserviceCore
from agola.services.runservice.logic.fetching import log_archived, log_object_path, log_selector
from agola.types.runservice import Executor, Run, RunTask
from agola.util.log import get_logger

log = get_logger(__name__)

EXECUTOR_LOGS = "/api/v1alpha/executor/logs"
RELAY_CHUNK = 64 * 1024


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

    def executor_params(self) -> dict[str, str]:
        params = {"taskid": self.task.id}
        if self.step is None:
            params["setup"] = ""
        else:
            params["step"] = str(self.step)
        return params


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
    params = ref.executor_params()
    if follow:
        params["follow"] = ""
    url = executor.listen_url.rstrip("/") + EXECUTOR_LOGS
    try:
        resp = await core.session.get(url, params=params, timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=core.options.executor_timeout))
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise Unavailable(f"executor {executor.id} unreachable: {exc!r}") from None
    if resp.status == 404:
        resp.release()
        raise NotExist("no log on executor")
    if resp.status >= 400:
        resp.release()
        raise Unavailable(f"executor {executor.id} answered {resp.status}")

    async def chunks() -> AsyncIterator[bytes]:
        try:
            # iter_any hands over whatever arrived at once: followers see lines as they come.
            async for chunk in resp.content.iter_any():
                yield chunk
        finally:
            resp.release()

    return chunks()


async def delete_log(core: RunserviceCore, ref: LogRef) -> None:
    if not ref.archived:
        raise BadRequest(f"log for task {ref.task.id} is not yet archived")
    try:
        await core.ost.delete(ref.object_path)
    except NotExist:
        raise NotExist(f"no log for task {ref.task.id}") from None


async def fetch_from_executor(
    core: RunserviceCore, executor: Executor, path: str, params: dict[str, str], object_path: str
) -> bool:
    """Copy ``GET <executor><path>?params`` into ``object_path``, streamed. False on 404."""
    url = executor.listen_url.rstrip("/") + path
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=core.options.executor_timeout,
                                    sock_read=core.options.executor_timeout * 3)
    async with core.session.get(url, params=params, timeout=timeout) as resp:
        if resp.status == 404:
            return False
        if resp.status >= 400:
            raise Unavailable(f"executor {executor.id} answered {resp.status} for {path}")

        async def body() -> AsyncIterator[bytes]:
            async for chunk in resp.content.iter_chunked(RELAY_CHUNK):
                yield chunk

        await core.ost.write(object_path, body(), size=resp.content_length)
    return True
