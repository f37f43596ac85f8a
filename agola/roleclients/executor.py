"""Typed client of an executor's API (spec §7.2), used by the runservice: it pushes tasks, relays
live logs and copies logs and workspace archives of finished tasks.

One client per executor, bound to its ``Executor.listen_url``; share the runservice's session.
"""

from __future__ import annotations

import aiohttp

from agola.roleclients.base import LOG_CHUNK, HTTPClient, ResponseStream
from agola.types.runservice import ExecutorTask, ExecutorTaskSpecData
from agola.types.stepquery import StepQuery


class ExecutorClient(HTTPClient):
    def __init__(self, base_url: str, *, token: str | None = None, session: aiohttp.ClientSession | None = None,
                 timeout: float = 10.0) -> None:
        """``timeout`` bounds a push, connecting, and the silence of a stream that does not follow."""
        super().__init__(base_url, token=token, session=session, timeout=timeout)
        self._stream_timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout * 3)
        self._follow_timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout)

    async def push_task(self, task: ExecutorTask, data: ExecutorTaskSpecData | None) -> str:
        """Hand a task (with its spec data, None when its run is gone) to the executor; what it did
        with it (``started``, ``busy``, ``ignored``...)."""
        out = await self.json("POST", "/executor", json_body=task.to_json(data))
        return str((out or {}).get("result", ""))

    def get_log(self, task_id: str, query: StepQuery) -> ResponseStream:
        """A step's (or the setup's) log; with ``follow``, a running step's log until it ends."""
        timeout = self._follow_timeout if query.follow else self._stream_timeout
        return self.stream("GET", "/executor/logs", params={"taskid": task_id, **query.params()}, timeout=timeout,
                           chunk_size=LOG_CHUNK, read_bufsize=LOG_CHUNK)

    def get_archive(self, task_id: str, step: int) -> ResponseStream:
        """The ``save_to_workspace`` archive of step ``step``."""
        params = {"taskid": task_id, "step": step}
        return self.stream("GET", "/executor/archives", params=params, timeout=self._stream_timeout)


__all__ = ["ExecutorClient"]
