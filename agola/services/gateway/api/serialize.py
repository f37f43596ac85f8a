"""Gateway response bodies (spec §6.2 "Response types"), from configstore and runservice objects."""

from __future__ import annotations

from typing import Any

from agola.services.gateway.actions.orgs import OrgMember, OrgMembers
from agola.services.gateway.actions.runs import TaskView
from agola.services.gateway.actions.secrets import VariableWithMatches
from agola.types.configstore import (
    LinkedAccount,
    Organization,
    ProjectGroupResponse,
    ProjectResponse,
    RemoteSource,
    SecretResponse,
    User,
)
from agola.types.runservice import (
    FetchPhase,
    RestoreCacheStep,
    RestoreWorkspaceStep,
    Run,
    RunPhase,
    RunResponse,
    RunResult,
    RunStep,
    SaveCacheStep,
    SaveToWorkspaceStep,
)


def user(u: User) -> dict[str, Any]:
    return {
        "id": u.id,
        "username": u.name,
        "tokens": sorted(u.tokens),
        "linked_accounts": [linked_account(la) for la in sorted(u.linked_accounts.values(), key=lambda la: la.id)],
    }


def linked_account(la: LinkedAccount) -> dict[str, Any]:
    # Never the tokens.
    return {"id": la.id, "remote_source_id": la.remote_source_id, "remote_user_name": la.remote_user_name,
            "remote_user_avatar_url": la.remote_user_avatar_url, "needs_reauthorization": la.needs_reauthorization}


def org(o: Organization) -> dict[str, Any]:
    return {"id": o.id, "name": o.name, "visibility": o.visibility}


def org_members(m: OrgMembers) -> dict[str, Any]:
    return {"organization": org(m.organization),
            "members": [{"user": user(x.user), "role": x.role} for x in m.members]}


def org_member(m: OrgMember) -> dict[str, Any]:
    return {"organization": org(m.organization), "user": user(m.user), "role": m.role}


def project_group(g: ProjectGroupResponse) -> dict[str, Any]:
    return {"id": g.project_group.id, "name": g.project_group.name, "path": g.path, "parent_path": g.parent_path,
            "visibility": g.project_group.visibility, "global_visibility": g.global_visibility}


def project(p: ProjectResponse) -> dict[str, Any]:
    return {"id": p.project.id, "name": p.project.name, "path": p.path, "parent_path": p.parent_path,
            "visibility": p.project.visibility, "global_visibility": p.global_visibility}


def secret(s: SecretResponse) -> dict[str, Any]:
    return {"id": s.secret.id, "name": s.secret.name, "parent_path": s.parent_path}


def variable(v: VariableWithMatches) -> dict[str, Any]:
    var = v.variable.variable
    return {
        "id": var.id,
        "name": var.name,
        "values": [
            {"secret_name": val.secret_name, "secret_var": val.secret_var, "matching_secret_parent_path": path,
             "when": val.when.to_json() if val.when is not None else None}
            for val, path in zip(var.values, v.matching_secret_parent_paths)
        ],
        "parent_path": v.variable.parent_path,
    }


def remote_source(rs: RemoteSource) -> dict[str, Any]:
    return {"id": rs.id, "name": rs.name, "auth_type": rs.auth_type,
            "registration_enabled": rs.registration_enabled, "login_enabled": rs.login_enabled}


def _times(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: raw.get(k) for k in ("start_time", "end_time")}


def _waiting(run: Run) -> list[str]:
    return sorted(tid for tid, t in run.tasks.items() if t.waiting_approval)


def runs_row(run: Run) -> dict[str, Any]:
    raw = run.to_json()
    return {
        "id": run.id, "counter": run.counter, "name": run.name, "annotations": dict(run.annotations),
        "phase": str(run.phase), "result": str(run.result), "tasks_waiting_approval": _waiting(run),
        "enqueue_time": raw.get("enqueue_time"), **_times(raw),
    }


def run(resp: RunResponse) -> dict[str, Any]:
    r = resp.run
    rc_tasks = resp.run_config.tasks if resp.run_config is not None else {}
    tasks: dict[str, Any] = {}
    for tid, task in r.tasks.items():
        config = rc_tasks.get(tid)
        raw = task.to_json()
        tasks[tid] = {
            "id": tid,
            "name": config.name if config else "",
            "status": str(task.status),
            "level": config.level if config else 0,
            "depends": {k: d.to_json() for k, d in config.depends.items()} if config else {},
            "waiting_approval": task.waiting_approval,
            "approved": task.approved,
            "approval_annotations": dict(task.annotations),
            "fail_error": task.fail_error,  # not in the reference: why it failed (executor lost...)
            **_times(raw),
        }
    finished = r.phase in (RunPhase.FINISHED, RunPhase.CANCELLED)
    return {
        **runs_row(r),
        "setup_errors": list(resp.run_config.setup_errors) if resp.run_config is not None else [],
        "stopping": r.stop,
        "tasks": tasks,
        "can_restart_from_scratch": finished,
        "can_restart_from_failed_tasks": r.phase == RunPhase.FINISHED and r.result != RunResult.SUCCESS,
    }


_FIXED_NAMES = {
    SaveToWorkspaceStep: ("save_to_workspace", "save to workspace"),
    RestoreWorkspaceStep: ("restore_workspace", "restore workspace"),
    SaveCacheStep: ("save_cache", "save cache"),
    RestoreCacheStep: ("restore_cache", "restore cache"),
}


def task(view: TaskView) -> dict[str, Any]:
    t = view.task
    raw = t.to_json()
    config_steps = view.config.steps if view.config is not None else []
    steps = []
    for i, state in enumerate(t.steps):
        sraw = state.to_json()
        out: dict[str, Any] = {"phase": str(state.phase), "exit_status": state.exit_status,
                               "log_archived": state.log_phase == FetchPhase.FINISHED, **_times(sraw)}
        step = config_steps[i] if i < len(config_steps) else None
        if isinstance(step, RunStep):
            out.update(type="run", name=step.name, command=step.command,
                       shell=step.shell or (view.config.shell if view.config else ""))
        elif step is not None and type(step) in _FIXED_NAMES:
            kind, name = _FIXED_NAMES[type(step)]
            out.update(type=kind, name=name)
        elif step is not None:
            out.update(type=str(step.type), name=step.name)
        steps.append(out)
    setup_raw = t.setup_step.to_json()
    return {
        "id": t.id,
        "name": view.config.name if view.config else "",
        "status": str(t.status),
        "waiting_approval": t.waiting_approval,
        "approved": t.approved,
        "approval_annotations": dict(t.annotations),
        "setup_step": {"phase": str(t.setup_step.phase), "name": "Task setup", **_times(setup_raw)},
        "steps": steps,
        "fail_error": t.fail_error,
        **_times(raw),
    }
