"""Run actions through the API: cancel, stop, restart, approval; and bad requests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agola.errors import BadRequest, NotExist
from agola.types.runservice import RunCreateRequest, RunPhase, RunResult, RunTaskStatus
from tests.runservice.role.conftest import GROUP, Instance, create_req, rct
from tests.runservice.role.test_runs_e2e import wait_run
from tests.support.waiting import wait_for


async def test_cancel_queued_run_is_archived(rs: Instance) -> None:
    run = (await rs.c.create_run(create_req(rct("a"), rct("b", "a")))).run
    cancelled = await rs.c.cancel_run(run.id)
    assert cancelled.phase is RunPhase.CANCELLED and cancelled.end_time is not None
    # Cancelled runs are archived too (quirk 7 of the reference, fixed).
    final = await wait_run(rs, run.id, lambda r: r.archived)
    assert final.phase is RunPhase.CANCELLED
    with pytest.raises(BadRequest, match="cannot be cancelled"):
        await rs.c.cancel_run(run.id)


async def test_stop_running_run(rs: Instance, make_executor: Callable[..., Any]) -> None:
    ex = await make_executor(rs.url)
    run = (await rs.c.create_run(create_req(rct("a", steps=2), rct("b", "a")))).run
    with pytest.raises(BadRequest, match="not running"):
        await rs.c.stop_run(run.id)
    await rs.c.start_run(run.id)
    with pytest.raises(BadRequest, match="cannot be cancelled"):
        await rs.c.cancel_run(run.id)
    await ex.wait_tasks(1)
    await ex.report("a", "running", steps=["running", "notstarted"])
    await wait_run(rs, run.id, lambda r: r.tasks["a"].status is RunTaskStatus.RUNNING)
    await rs.c.stop_run(run.id)

    # The executor is told to stop (pushed again with spec.stop set).
    async def stop_pushed() -> bool:
        return bool(ex.tasks["a"]["spec"].get("stop"))

    await wait_for(stop_pushed, 10)
    await ex.report("a", "stopped", steps=["stopped", "notstarted"])
    final = await wait_run(rs, run.id, lambda r: r.phase is RunPhase.FINISHED)
    assert final.result is RunResult.STOPPED
    assert final.tasks["a"].status is RunTaskStatus.STOPPED
    assert final.tasks["b"].status is RunTaskStatus.SKIPPED  # its parent did not succeed
    await wait_run(rs, run.id, lambda r: r.archived)


async def test_restart_from_failed_keeps_successful_tasks(rs: Instance, make_executor: Callable[..., Any]) -> None:
    ex = await make_executor(rs.url)
    run = (await rs.c.create_run(create_req(rct("a"), rct("b", "a"), rct("c", "b")))).run
    await rs.c.start_run(run.id)
    await ex.wait_tasks(1)
    with pytest.raises(BadRequest, match="run cannot be restarted"):
        await rs.c.restart_run(run.id, from_start=True)
    await ex.run_task("a")
    await ex.wait_tasks(2)
    await ex.run_task("b", "failed")
    await wait_run(rs, run.id, lambda r: r.phase is RunPhase.FINISHED and r.archived)

    restarted = (await rs.c.restart_run(run.id, from_start=False)).run
    assert restarted.id > run.id and restarted.counter == 2 and restarted.phase is RunPhase.QUEUED
    # a succeeded: kept (same id, status); b and its descendant c are recreated with new ids.
    assert restarted.tasks["a"].status is RunTaskStatus.SUCCESS
    new_ids = set(restarted.tasks) - {"a"}
    assert len(new_ids) == 2 and not new_ids & {"b", "c"}
    await rs.c.start_run(restarted.id)
    tasks = await ex.wait_tasks(3)
    assert tasks[2]["id"] in new_ids and tasks[2]["spec"]["run_id"] == restarted.id
    with pytest.raises(BadRequest, match="run cannot be restarted"):
        await rs.c.restart_run(restarted.id, from_start=False)
    with pytest.raises(BadRequest, match="does not exist"):
        await rs.c.restart_run("0000000000000-0000000000099", from_start=True)


async def test_approval(rs: Instance, make_executor: Callable[..., Any]) -> None:
    ex = await make_executor(rs.url)
    run = (await rs.c.create_run(create_req(rct("a"), rct("deploy", "a", approval=True)))).run
    await rs.c.start_run(run.id)
    await ex.wait_tasks(1)
    with pytest.raises(BadRequest, match="not waiting for approval"):
        await rs.c.approve_task(run.id, "deploy")
    await ex.run_task("a")
    await wait_run(rs, run.id, lambda r: r.tasks["deploy"].waiting_approval)
    assert len(ex.pushed) == 1  # not sent before approval
    await rs.c.approve_task(run.id, "deploy")
    [deploy] = (await ex.wait_tasks(2))[1:]
    assert deploy["id"] == "deploy"
    with pytest.raises(BadRequest, match="already approved"):
        await rs.c.approve_task(run.id, "deploy")


async def test_change_groups_token_guards_actions(rs: Instance) -> None:
    run = (await rs.c.create_run(create_req(rct("a")))).run
    token = await rs.c.change_groups_token(["g1"])
    await rs.c.set_task_annotations(run.id, "a", {"k": "v"}, token=token)
    from agola.errors import Conflict

    with pytest.raises(Conflict):
        await rs.c.set_task_annotations(run.id, "a", {"k": "w"}, token=token)
    got = (await rs.c.get_run(run.id)).run
    assert got.tasks["a"].annotations == {"k": "v"}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"run_config_tasks": {}, "group": ""}, "run group is empty"),
        ({"run_config_tasks": {}, "group": "project/x"}, "absolute"),
        ({"group": GROUP}, "run_config_tasks is required"),
        ({"group": GROUP, "run_config_tasks": {"a": {"id": "a", "name": "a"}}}, "runtime"),
        ({"group": GROUP, "run_config_tasks": {"a": {"id": "a", "name": "a", "runtime": {"containers": []}}}},
         "at least one container"),
    ],
)
async def test_bad_run_requests(rs: Instance, body: dict[str, Any], problem: str) -> None:
    with pytest.raises(BadRequest, match=problem):
        await rs.c.json("POST", "/runs", json_body=body)


async def test_bad_dags_are_refused_naming_the_problem(rs: Instance) -> None:
    with pytest.raises(BadRequest, match=r"(?i)cycl|circular"):
        await rs.c.create_run(create_req(rct("a", "b"), rct("b", "a")))
    with pytest.raises(BadRequest, match="nope"):
        await rs.c.create_run(create_req(rct("a", "nope")))
    # Setup errors sent by the caller still make a run, in setuperror, without tasks.
    req = RunCreateRequest(name="bad", group=GROUP, setup_errors=["config.yml: line 3: bad"])
    run = (await rs.c.create_run(req)).run
    assert run.phase is RunPhase.SETUP_ERROR and run.tasks == {}


async def test_unknown_run_and_routes(rs: Instance) -> None:
    with pytest.raises(NotExist):
        await rs.c.get_run("0000000000000-0000000000042")
    with pytest.raises(BadRequest):
        await rs.c.json("GET", "/nothing/here")
    with pytest.raises(BadRequest, match=r"action_type.*explode"):
        await rs.c.json("PUT", "/runs/x/actions", json_body={"action_type": "explode"})
