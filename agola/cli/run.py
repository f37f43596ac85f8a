"""``agola run``: list, inspect, follow and act on runs (spec §8, §6.7)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from agola.cli import CliContext
from agola.cli._output import EXIT_RUN_FAILED, CliError, Column, call, done, emit, emit_fields, json_option, print_json
from agola.cli._runs import branch_of, duration, group_of, phase_result, resolve_run_id, result_of, start_time

if TYPE_CHECKING:
    from agola.client import GatewayClient, RunResponse

RUN_COLUMNS: list[Column] = [
    ("#", lambda r: r.counter),
    ("group", group_of),
    ("branch", branch_of),
    ("status", phase_result),
    ("duration", lambda r: duration(r.start_time, r.end_time, _now(r))),
    ("started", start_time),
    ("name", lambda r: r.name),
    ("id", lambda r: r.id),
]
RUN_FIELDS: list[Column] = [
    ("ID", lambda r: r.id),
    ("Name", lambda r: r.name),
    ("Counter", lambda r: f"#{r.counter}"),
    ("Group", group_of),
    ("Branch", branch_of),
    ("Phase", lambda r: r.phase),
    ("Result", lambda r: result_of(r.phase, r.result)),
    ("Stopping", lambda r: r.stopping),
    ("Ref", lambda r: r.annotations.get("ref", "")),
    ("Commit", lambda r: r.annotations.get("commit_sha", "")),
    ("Message", lambda r: r.annotations.get("message", "").split("\n")[0]),
    ("Enqueued", lambda r: r.enqueue_time),
    ("Started", lambda r: r.start_time),
    ("Ended", lambda r: r.end_time),
    ("Duration", lambda r: duration(r.start_time, r.end_time, _now(r))),
]
TASK_COLUMNS: list[Column] = [
    ("task", lambda t: t.name),
    ("status", lambda t: t.status + (" (waiting approval)" if t.waiting_approval and not t.approved else "")),
    ("level", lambda t: t.level),
    ("duration", lambda t: duration(t.start_time, t.end_time, datetime.now(UTC) if not t.end_time else None)),
    ("id", lambda t: t.id),
]
RUN_REF = "RUN: a run id, or its counter (3 or #3) among your direct runs (--project: a project's runs)."


def _now(r: Any) -> datetime | None:
    """The end of a running run's duration so far."""
    return None if r.end_time else datetime.now(UTC)


@click.group()
def run() -> None:
    """List, inspect, follow and act on runs."""


async def _group(gw: GatewayClient, project: str | None, group: str | None) -> str:
    """The run group to list: a project's, an explicit one, or the caller's direct runs."""
    if group:
        return group
    if project:
        return f"/project/{(await gw.get_project(project)).id}"
    return f"/user/{(await gw.current_user()).id}"


@run.command("list")
@click.option("--project", default=None, help="A project (path or id); default: your direct runs.")
@click.option("--group", default=None, help="A run group path, e.g. /user/<id>/branch/master.")
@click.option("-s", "--phase", "phases", multiple=True, help="Only runs in this phase (repeatable).")
@click.option("--result", "results", multiple=True, help="Only runs with this result (repeatable).")
@click.option("--limit", default=10, show_default=True)
@click.option("--start", default="", help="List runs after this run id.")
@click.option("--asc", is_flag=True, help="Oldest first.")
@json_option
@click.pass_obj
def list_(
    ctx: CliContext, project: str | None, group: str | None, phases: tuple[str, ...], results: tuple[str, ...],
    limit: int, start: str, asc: bool, as_json: bool,
) -> None:
    """List runs, newest first."""
    if project and group:
        raise click.UsageError("give --project or --group, not both")

    async def runs(gw: GatewayClient) -> Any:
        g = await _group(gw, project, group)
        return await gw.list_runs(g, phases=phases, results=results, start=start, limit=limit, asc=asc)

    emit(call(ctx, runs), as_json, RUN_COLUMNS)


project_option = click.option("--project", default=None, help="Counters are of this project's runs (path or id).")


async def _get_run(gw: GatewayClient, run_ref: str, project: str | None) -> RunResponse:
    return await gw.get_run(await resolve_run_id(gw, run_ref, project))


@run.command("show", epilog=RUN_REF)
@click.argument("run_ref", metavar="RUN")
@project_option
@json_option
@click.pass_obj
def show(ctx: CliContext, run_ref: str, project: str | None, as_json: bool) -> None:
    """Show a run and its tasks."""
    r = call(ctx, lambda gw: _get_run(gw, run_ref, project))
    if as_json:
        print_json(r)
        return
    emit_fields(r, False, RUN_FIELDS)
    for err in r.setup_errors:
        click.echo(f"Setup error: {err}")
    if r.tasks:
        tasks = sorted(r.tasks.values(), key=lambda t: (t.level, t.name))
        click.echo("")
        emit(tasks, False, TASK_COLUMNS)
        for t in tasks:
            if t.fail_error:  # e.g. its executor died: no step log says so
                click.echo(f"Task {t.name} {t.status}: {t.fail_error}")


def _task_of(r: RunResponse, task: str) -> Any:
    found = r.task_by_name(task)
    if found is None:
        names = ", ".join(sorted(t.name for t in r.tasks.values())) or "none"
        raise CliError(f"run #{r.counter} has no task {task!r} (tasks: {names})")
    return found


@run.command("logs", epilog=RUN_REF)
@click.argument("run_ref", metavar="RUN")
@project_option
@click.option("-t", "--task", default=None, help="Task name or id (default: every task).")
@click.option("--step", type=click.IntRange(min=0), default=None, help="Only this step (0 = the first).")
@click.option("--setup", is_flag=True, help="Only the task's setup log.")
@click.option("-f", "--follow", is_flag=True, help="Stream live until the step (or the whole run) ends.")
@click.option("--delete", is_flag=True, help="Delete the archived log of --step or --setup instead of printing it.")
@click.pass_obj
def logs(
    ctx: CliContext, run_ref: str, project: str | None, task: str | None, step: int | None, setup: bool, follow: bool,
    delete: bool,
) -> None:
    """Print a run's logs: one step's, a task's or (without --task) every task's.

    With --follow and no --task, follows the whole run: task statuses and logs as they come,
    and exits 0 if the run succeeds, 3 otherwise.
    """
    if step is not None and setup:
        raise click.UsageError("give --step or --setup, not both")
    if (step is not None or setup or delete) and not task:
        raise click.UsageError("--step, --setup and --delete need --task")
    if delete and step is None and not setup:
        raise click.UsageError("--delete needs --step or --setup")
    from agola.cli._follow import LineBuffer, RunFollower, interrupted_message, live_terminal

    def write(line: str) -> None:
        click.echo(line)

    following: dict[str, RunResponse] = {}

    async def main(gw: GatewayClient) -> int:
        r = await _get_run(gw, run_ref, project)
        live = follow and task is None and live_terminal(1)
        follower = RunFollower(gw, write, prefix_run=False, live=live, following=following)
        if task is None:
            if follow:
                final = await follower.follow(r.id)
                return 0 if final.result == "success" else EXIT_RUN_FAILED
            await follower.all_logs(r)
            return 0
        t = _task_of(r, task)
        if delete:
            await gw.delete_log(r.id, t.id, step=step, setup=setup)
            write("log deleted")
            return 0
        if step is None and not setup:
            await follower.task_logs(r, t.id, t.name, follow=follow)
            return 0
        if follow:
            steps = len((await gw.get_task(r.id, t.id)).steps)
            if step is not None and step >= steps:
                raise CliError(f"task {t.name} has {steps} steps (0 to {steps - 1}): no step {step}")
            await follower.step_log(r.id, t.id, step=step, follow=True)
            return 0
        out = LineBuffer(write, "")
        async for chunk in gw.stream_log(r.id, t.id, step=step, setup=setup, follow=follow):
            out.feed(chunk)
        out.close()
        return 0

    def interrupted() -> str:
        if task is None or not follow:
            return interrupted_message(following)
        what = f"step {step} of task {task}" if step is not None else f"the setup of task {task}" if setup else f"task {task}"
        which = ["--step", str(step)] if step is not None else ["--setup"] if setup else []
        again = " ".join(["agola run logs", run_ref, "-t", task, *which, "-f"])
        return f"Stopped following the log of {what}: the run keeps running.\n  follow it again: {again}"

    code = call(ctx, main, interrupted=interrupted)
    if code:
        sys.exit(code)


@run.command("restart", epilog=RUN_REF)
@click.argument("run_ref", metavar="RUN")
@project_option
@click.option("--from-start", is_flag=True, help="Run every task again (default: only failed ones).")
@click.option("-f", "--follow", is_flag=True, help="Follow the new run until it ends; exit 0 only on success.")
@json_option
@click.pass_obj
def restart(ctx: CliContext, run_ref: str, project: str | None, from_start: bool, follow: bool, as_json: bool) -> None:
    """Restart a finished run as a new run (tasks that succeeded are kept, unless --from-start)."""
    from agola.cli._follow import RunFollower, interrupted_message, live_terminal

    following: dict[str, RunResponse] = {}

    async def main(gw: GatewayClient) -> int:
        old = await _get_run(gw, run_ref, project)
        new = await gw.restart_run(old.id, from_start=from_start)
        done(f"run #{old.counter} restarted as run #{new.counter} ({new.id})", new, as_json)
        if not follow:
            return 0
        follower = RunFollower(gw, click.echo, live=live_terminal(1), following=following)
        final = await follower.follow(new.id)
        return 0 if final.result == "success" else EXIT_RUN_FAILED

    if follow and as_json:
        raise click.UsageError("give --follow or --json, not both")
    code = call(ctx, main, interrupted=lambda: interrupted_message(following))
    if code:
        sys.exit(code)


def _act(ctx: CliContext, run_ref: str, project: str | None, action: str) -> RunResponse:
    """Resolve the run, then ``stop_run`` or ``cancel_run`` it; the run as it was."""

    async def main(gw: GatewayClient) -> RunResponse:
        r = await _get_run(gw, run_ref, project)
        await (gw.stop_run(r.id) if action == "stop" else gw.cancel_run(r.id))
        return r

    return call(ctx, main)


@run.command("stop", epilog=RUN_REF)
@click.argument("run_ref", metavar="RUN")
@project_option
@click.pass_obj
def stop(ctx: CliContext, run_ref: str, project: str | None) -> None:
    """Stop a running run."""
    r = _act(ctx, run_ref, project, "stop")
    done(f"run #{r.counter} ({r.id}) is stopping")


@run.command("cancel", epilog=RUN_REF)
@click.argument("run_ref", metavar="RUN")
@project_option
@click.pass_obj
def cancel(ctx: CliContext, run_ref: str, project: str | None) -> None:
    """Cancel a queued run."""
    r = _act(ctx, run_ref, project, "cancel")
    done(f"run #{r.counter} ({r.id}) cancelled")


@run.command("approve", epilog=RUN_REF)
@click.argument("run_ref", metavar="RUN")
@click.argument("task")
@project_option
@click.pass_obj
def approve(ctx: CliContext, run_ref: str, task: str, project: str | None) -> None:
    """Approve a task waiting for approval (TASK: name or id)."""

    async def main(gw: GatewayClient) -> tuple[RunResponse, str]:
        r = await _get_run(gw, run_ref, project)
        t = _task_of(r, task)
        if not t.waiting_approval:
            raise CliError(f"task {t.name} of run #{r.counter} is not waiting for an approval (status: {t.status})")
        await gw.approve_task(r.id, t.id)
        return r, str(t.name)

    r, name = call(ctx, main)
    done(f"task {name} of run #{r.counter} approved")


@run.command("create")
@click.option("--project", required=True, help="Project path or id.")
@click.option("--branch", default="", help="Branch to run.")
@click.option("--tag", default="", help="Tag to run.")
@click.option("--ref", default="", help="Ref to run (a branch or tag ref).")
@click.option("--commit-sha", default="", help="Commit (default: the ref's head).")
@click.pass_obj
def create(ctx: CliContext, project: str, branch: str, tag: str, ref: str, commit_sha: str) -> None:
    """Start a run of a project's repository (manual run)."""
    from agola.client import ProjectCreateRunRequest

    if sum(bool(x) for x in (branch, tag, ref)) != 1:
        raise click.UsageError("give exactly one of --branch, --tag or --ref")
    call(ctx, lambda gw: gw.project_create_run(project, ProjectCreateRunRequest(branch, tag, ref, commit_sha)))
    done(f"run requested for project {project}")
