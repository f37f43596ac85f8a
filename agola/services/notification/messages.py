"""What a run event becomes: the run webhook body (Agola v0.9's ``RunWebhook``, version 1) and the
commit status of a project run (spec §6.10). Pure functions, no I/O."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

import attrs

from agola.forges.base import CommitState
from agola.types._json import format_time
from agola.types.notification import OwnerType
from agola.types.runservice import Run, RunConfig, RunPhase, RunResult

WEBHOOK_VERSION = 1
# The headers Agola sends with a run webhook.
EVENT_HEADER = "X-Agola-Event"
DELIVERY_HEADER = "X-Agola-Delivery"
SIGNATURE_HEADER = "X-Agola-SHA256Signature"
RUN_EVENT = "run"

SETUP_ERROR_RUN_NAME = "Setup Error"

DESCRIPTIONS: dict[CommitState, str] = {
    CommitState.PENDING: "The run is pending",
    CommitState.SUCCESS: "The run finished successfully",
    CommitState.ERROR: "The run encountered an error",
    CommitState.FAILURE: "The run failed",
}


@attrs.frozen
class Owner:
    type: OwnerType
    id: str


def run_owner(run: Run) -> Owner | None:
    """Whose run it is, from its annotations (project runs: ``projectid``; direct runs: ``userid``)."""
    ann = run.annotations
    if ann.get("run_type") == "project" and ann.get("projectid"):
        return Owner(OwnerType.PROJECT, ann["projectid"])
    if ann.get("run_type") == "user" and ann.get("userid"):
        return Owner(OwnerType.USER, ann["userid"])
    return None


def _time(value: datetime | None) -> str | None:
    return format_time(value) if value is not None else None


def webhook_payload(run: Run, config: RunConfig | None, phase: RunPhase, result: RunResult) -> dict[str, Any]:
    """The body of a run webhook. ``phase``/``result`` are the event's (the run read afterwards
    may already be further along); everything else is the run as read. Agola's fields, plus
    ``user_info`` for direct runs (Agola sent webhooks for project runs only)."""
    owner = run_owner(run)
    config_tasks = config.tasks if config is not None else {}
    tasks: dict[str, Any] = {}
    for task_id, task in run.tasks.items():
        ct = config_tasks.get(task_id)
        tasks[task_id] = {
            "id": task.id,
            "name": ct.name if ct is not None else "",
            "level": ct.level if ct is not None else 0,
            "skip": task.skip,
            "depends": {
                dep_id: {"task_id": dep.task_id, "conditions": [str(c) for c in dep.conditions]}
                for dep_id, dep in (ct.depends.items() if ct is not None else ())
            },
            "status": str(task.status),
            "timedout": task.timedout,
            "waiting_approval": task.waiting_approval,
            "approved": task.approved,
            "setup_step": _step(task.setup_step),
            "steps": [_step(s) for s in task.steps],
            "start_time": _time(task.start_time),
            "end_time": _time(task.end_time),
        }
    body: dict[str, Any] = {
        "version": WEBHOOK_VERSION,
        "project_info": {"project_id": owner.id if owner and owner.type is OwnerType.PROJECT else ""},
        "run": {
            "id": run.id,
            "ref_type": run.annotations.get("ref_type", ""),
            "ref": run.annotations.get("ref", ""),
            "name": run.name,
            "counter": run.counter,
            "phase": str(phase),
            "result": str(result),
            "setup_errors": list(config.setup_errors) if config is not None else [],
            "tasks": tasks,
            "enqueue_time": _time(run.enqueue_time),
            "start_time": _time(run.start_time),
            "end_time": _time(run.end_time),
        },
    }
    if owner is not None and owner.type is OwnerType.USER:
        body["user_info"] = {"user_id": owner.id}
    return body


def _step(step: Any) -> dict[str, Any]:
    return {"phase": str(step.phase), "exit_status": step.exit_status,
            "start_time": _time(step.start_time), "end_time": _time(step.end_time)}


def encode_payload(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def sign(secret: str, body: bytes) -> str:
    """``X-Agola-SHA256Signature``: the hex HMAC-SHA256 of the body with the webhook secret."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_headers(delivery_id: str, body: bytes, secret: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json", EVENT_HEADER: RUN_EVENT, DELIVERY_HEADER: delivery_id}
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, body)
    return headers


def commit_state(phase: RunPhase, result: RunResult) -> CommitState | None:
    """The commit status of a run event (spec §6.10, plus pending while queued); None: no change
    to report (a running run whose result is already known waits for the end)."""
    if phase in (RunPhase.SETUP_ERROR, RunPhase.CANCELLED):
        return CommitState.ERROR
    if phase is RunPhase.QUEUED or (phase is RunPhase.RUNNING and result is RunResult.UNKNOWN):
        return CommitState.PENDING
    if phase is RunPhase.FINISHED:
        if result is RunResult.SUCCESS:
            return CommitState.SUCCESS
        if result in (RunResult.FAILED, RunResult.STOPPED):
            return CommitState.FAILURE
    return None


def status_context(installation_id: str, project_name: str, run_name: str) -> str:
    return f"{installation_id}/{project_name}/{run_name or SETUP_ERROR_RUN_NAME}"


def run_url(web_exposed_url: str, run_id: str) -> str:
    """The run's page in the web UI (``agola.web``: ``/runs/{runid}``)."""
    return f"{web_exposed_url.rstrip('/')}/runs/{run_id}"
