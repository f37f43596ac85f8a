"""Typed client of the runservice API (used by the gateway, the scheduler and executors).

Errors come back typed (``NotExist``, ``BadRequest``...). Streams (logs, archives, caches,
exports, run events) are async iterators of bytes (or of decoded events) with bounded memory.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any, TypedDict, Unpack
from urllib.parse import quote

from agola.errors import NotExist
from agola.roleclients.base import LOG_CHUNK, NO_TIMEOUT, Body, ResponseStream
from agola.roleclients.maintenance import MaintenanceCalls
from agola.types.runservice import (
    Executor,
    ExecutorTask,
    ExecutorTaskSpecData,
    Run,
    RunCreateRequest,
    RunEvent,
    RunPhase,
    RunResponse,
)
from agola.types.stepquery import StepQuery


class RunsQuery(TypedDict, total=False):
    """The filters and paging of a runs listing (``GET /runs``)."""

    phases: list[str] | None
    results: list[str] | None
    groups: list[str] | None
    last_run: bool
    change_groups: list[str] | None
    start: str
    limit: int
    asc: bool
    min_revision: int


class RunserviceClient(MaintenanceCalls):
    # --- runs ---------------------------------------------------------------------------------

    async def create_run(self, req: RunCreateRequest) -> RunResponse:
        return RunResponse.from_json(await self.json("POST", "/runs", json_body=req.to_json()))

    async def get_run(self, run_id: str, change_groups: list[str] | None = None) -> RunResponse:
        params = {"changegroup": change_groups} if change_groups else None
        return RunResponse.from_json(await self.json("GET", f"/runs/{run_id}", params=params))

    async def list_runs(self, **query: Unpack[RunsQuery]) -> tuple[list[Run], str]:
        """``min_revision``: list once the runservice's readdb has applied that coordination
        revision (see ``run_events_at``)."""
        runs, token = await self.list_runs_json(**query)
        return [Run.from_json(r) for r in runs], token

    async def list_runs_json(
        self,
        *,
        phases: list[str] | None = None,
        results: list[str] | None = None,
        groups: list[str] | None = None,
        last_run: bool = False,
        change_groups: list[str] | None = None,
        start: str = "",
        limit: int = 0,
        asc: bool = False,
        min_revision: int = 0,
    ) -> tuple[list[dict[str, Any]], str]:
        """``list_runs`` with the runs as JSON objects, not decoded: for a caller that looks at a
        field or two of many runs (decoding every run, tasks and steps, was most of its cost)."""
        params: dict[str, Any] = {}
        if min_revision:
            params["minrevision"] = min_revision
        if phases:
            params["phase"] = phases
        if results:
            params["result"] = results
        if groups:
            params["group"] = groups
        if last_run:
            params["lastrun"] = ""
        if change_groups:
            params["changegroup"] = change_groups
        if start:
            params["start"] = start
        if limit:
            params["limit"] = limit
        if asc:
            params["asc"] = ""
        body = await self.json("GET", "/runs", params=params)
        return list(body["runs"]), body.get("change_groups_update_tokens", "")

    async def _run_action(self, run_id: str, body: dict[str, Any]) -> Run:
        out = await self.json("PUT", f"/runs/{run_id}/actions", json_body=body)
        return Run.from_json(out["run"])

    async def start_run(self, run_id: str, token: str = "") -> Run:
        return await self._run_action(run_id, {"action_type": "changephase", "phase": RunPhase.RUNNING.value,
                                               "change_groups_update_tokens": token})

    async def cancel_run(self, run_id: str, token: str = "") -> Run:
        return await self._run_action(run_id, {"action_type": "changephase", "phase": RunPhase.CANCELLED.value,
                                               "change_groups_update_tokens": token})

    async def stop_run(self, run_id: str, token: str = "") -> Run:
        return await self._run_action(run_id, {"action_type": "stop", "change_groups_update_tokens": token})

    async def restart_run(self, run_id: str, *, from_start: bool, environment: Mapping[str, str] | None = None) -> RunResponse:
        req = RunCreateRequest(run_id=run_id, from_start=from_start, environment=dict(environment or {}))
        return await self.create_run(req)

    async def _task_action(self, run_id: str, task_id: str, body: dict[str, Any]) -> Run:
        out = await self.json("PUT", f"/runs/{run_id}/tasks/{task_id}/actions", json_body=body)
        return Run.from_json(out["run"])

    async def approve_task(self, run_id: str, task_id: str, token: str = "") -> Run:
        return await self._task_action(run_id, task_id, {"action_type": "approve", "change_groups_update_tokens": token})

    async def set_task_annotations(self, run_id: str, task_id: str, annotations: Mapping[str, str], token: str = "") -> Run:
        return await self._task_action(run_id, task_id, {"action_type": "setannotations",
                                                          "annotations": dict(annotations),
                                                          "change_groups_update_tokens": token})

    async def change_groups_token(self, groups: list[str]) -> str:
        return str(await self.json("GET", "/changegroups", params={"changegroup": groups}))

    # --- logs and events ----------------------------------------------------------------------

    def get_log(self, run_id: str, task_id: str, *, setup: bool = False, step: int | None = None,
                follow: bool = False) -> ResponseStream:
        query = StepQuery(setup=setup, step=step, follow=follow)
        return self.stream("GET", "/logs", params={"runid": run_id, "taskid": task_id, **query.params()},
                           chunk_size=LOG_CHUNK, read_bufsize=LOG_CHUNK)

    async def delete_log(self, run_id: str, task_id: str, *, setup: bool = False, step: int | None = None) -> None:
        query = StepQuery(setup=setup, step=step)
        await self.json("DELETE", "/logs", params={"runid": run_id, "taskid": task_id, **query.params()})

    async def run_events(self, on_connected: Callable[[], None] | None = None) -> AsyncGenerator[RunEvent, None]:
        """Run events as they happen (server-sent events), until the caller stops iterating.
        ``on_connected`` is called once the server follows the events for this stream (none
        happening from then on is missed), before the first event arrives."""
        async for _, event in self.run_events_at(on_connected):
            yield event

    async def run_events_at(
        self, on_connected: Callable[[], None] | None = None
    ) -> AsyncGenerator[tuple[int, RunEvent], None]:
        """``run_events()`` with each event's coordination revision (0 if the server sent none):
        ``list_runs(min_revision=...)`` then lists the runs at least as the event left them."""
        resp = await self.request("GET", "/runs/events", timeout=NO_TIMEOUT)
        if on_connected is not None:
            on_connected()
        revision = 0
        async with resp:
            async for line in resp.content:
                if line.startswith(b"id: "):
                    try:
                        revision = int(line[4:].strip())
                    except ValueError:
                        revision = 0
                elif line.startswith(b"data: "):
                    yield revision, RunEvent.from_json(line[6:].strip())
                    revision = 0

    # --- executors ----------------------------------------------------------------------------

    async def executor_heartbeat(self, executor: Executor) -> Executor:
        return Executor.from_json(await self.json("POST", f"/executor/{executor.id}", json_body=executor.to_json()))

    async def delete_executor(self, executor_id: str) -> None:
        await self.json("DELETE", f"/executor/{executor_id}")

    async def list_executors(self) -> list[Executor]:
        return [Executor.from_json(e) for e in await self.json("GET", "/executors")]

    async def executor_tasks(self, executor_id: str) -> list[tuple[ExecutorTask, ExecutorTaskSpecData | None]]:
        """The executor's tasks, each with its spec data (None when its run is gone)."""
        raw = await self.json("GET", f"/executor/{executor_id}/tasks")
        return [ExecutorTask.from_json_with_data(t, path=f"[{i}]") for i, t in enumerate(raw)]

    async def executor_task(self, executor_id: str, task_id: str) -> tuple[ExecutorTask, ExecutorTaskSpecData | None]:
        return ExecutorTask.from_json_with_data(await self.json("GET", f"/executor/{executor_id}/tasks/{task_id}"))

    async def update_executor_task_status(self, executor_id: str, task: ExecutorTask) -> None:
        await self.json("POST", f"/executor/{executor_id}/tasks/{task.id}", json_body=task.to_json())

    async def upload_log(self, task_id: str, data: Body, *, setup: bool = False,
                         step: int | None = None) -> None:
        params = {"taskid": task_id, **StepQuery(setup=setup, step=step).params()}
        await self.json("PUT", "/executor/logs", params=params, data=data, timeout=NO_TIMEOUT)

    async def upload_archive(self, task_id: str, step: int, data: Body) -> None:
        await self.json("PUT", "/executor/archives", params={"taskid": task_id, "step": step}, data=data,
                        timeout=NO_TIMEOUT)

    def get_archive(self, task_id: str, step: int) -> ResponseStream:
        return self.stream("GET", "/executor/archives", params={"taskid": task_id, "step": step})

    async def cache_exists(self, key: str, *, prefix: bool = False) -> bool:
        try:
            resp = await self.request("HEAD", f"/executor/caches/{_quote(key)}", params={"prefix": ""} if prefix else None)
        except NotExist:
            return False
        resp.release()
        return True

    def get_cache(self, key: str, *, prefix: bool = False) -> ResponseStream:
        return self.stream("GET", f"/executor/caches/{_quote(key)}", params={"prefix": ""} if prefix else None)

    async def put_cache(self, key: str, data: Body) -> bool:
        """Store a cache; False if the key already existed (the first upload stays)."""
        resp = await self.request("POST", f"/executor/caches/{_quote(key)}", data=data, timeout=NO_TIMEOUT)
        resp.release()
        return resp.status != 304


def _quote(key: str) -> str:
    return quote(key, safe="")


__all__ = ["RunserviceClient"]
