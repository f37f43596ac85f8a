"""``agola run``: list, inspect, follow and act on runs (spec §8, §6.7)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from agola.cli import CliContext
from agola.cli._output import EXIT_RUN_FAILED, CliError, Column, call, done, emit, emit_fields, json_option, print_json

if TYPE_CHECKING:
    from agola.client import GatewayClient, RunResponse

RUN_COLUMNS: list[Column] = [
    ("#", lambda r: r.counter),
    ("id", lambda r: r.id),
    ("name", lambda r: r.name),
    ("phase", lambda r: r.phase),
    ("result", lambda r: r.result),
    ("ref", lambda r: r.annotations.get("ref", "")),
    ("started", lambda r: r.start_time or ""),
]
RUN_FIELDS: list[Column] = [
    ("ID", lambda r: r.id),
    ("Name", lambda r: r.name),
    ("Counter", lambda r: r.counter),
    ("Phase", lambda r: r.phase),
    ("Result", lambda r: r.result),
    ("Stopping", lambda r: r.stopping),
    ("Ref", lambda r: r.annotations.get("ref", "")),
    ("Commit", lambda r: r.annotations.get("commit_sha", "")),
    ("Enqueued", lambda r: r.enqueue_time),
    ("Started", lambda r: r.start_time),
    ("Ended", lambda r: r.end_time),
]
TASK_COLUMNS: list[Column] = [
    ("task", lambda t: t.name),
    ("status", lambda t: t.status + (" (waiting approval)" if t.waiting_approval and not t.approved else "")),
    ("level", lambda t: t.level),
    ("id", lambda t: t.id),
    ("started", lambda t: t.start_time or ""),
    ("ended", lambda t: t.end_time or ""),
]


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


@run.command("show")
@click.argument("run_id")
@json_option
@click.pass_obj
def show(ctx: CliContext, run_id: str, as_json: bool) -> None:
    """Show a run and its tasks."""
    r = call(ctx, lambda gw: gw.get_run(run_id))
    if as_json:
        print_json(r)
        return
    emit_fields(r, False, RUN_FIELDS)
    for err in r.setup_errors:
        click.echo(f"Setup error: {err}")
    if r.tasks:
        click.echo("")
        emit(sorted(r.tasks.values(), key=lambda t: (t.level, t.name)), False, TASK_COLUMNS)


def _task_of(r: RunResponse, task: str) -> Any:
    found = r.task_by_name(task)
    if found is None:
        names = ", ".join(sorted(t.name for t in r.tasks.values())) or "none"
        raise CliError(f"run {r.id} has no task {task!r} (tasks: {names})")
    return found


@run.command("logs")
@click.argument("run_id")
@click.option("-t", "--task", default=None, help="Task name or id (default: every task).")
@click.option("--step", type=click.IntRange(min=0), default=None, help="Only this step (0 = the first).")
@click.option("--setup", is_flag=True, help="Only the task's setup log.")
@click.option("-f", "--follow", is_flag=True, help="Stream live until the step (or the whole run) ends.")
@click.option("--delete", is_flag=True, help="Delete the archived log of --step or --setup instead of printing it.")
@click.pass_obj
def logs(ctx: CliContext, run_id: str, task: str | None, step: int | None, setup: bool, follow: bool, delete: bool) -> None:
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
    from agola.cli._follow import LineBuffer, RunFollower

    def write(line: str) -> None:
        click.echo(line)

    async def main(gw: GatewayClient) -> int:
        r = await gw.get_run(run_id)
        follower = RunFollower(gw, write, prefix_run=False)
        if task is None:
            if follow:
                final = await follower.follow(r.id)
                return 0 if final.result == "success" else EXIT_RUN_FAILED
            for t in sorted(r.tasks.values(), key=lambda t: (t.level, t.name)):
                if t.status not in ("notstarted", "skipped", "cancelled"):
                    await follower.task_logs(r, t.id, t.name, follow=False)
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

    code = call(ctx, main)
    if code:
        sys.exit(code)


@run.command("restart")
@click.argument("run_id")
@click.option("--from-start", is_flag=True, help="Run every task again (default: only failed ones).")
@json_option
@click.pass_obj
def restart(ctx: CliContext, run_id: str, from_start: bool, as_json: bool) -> None:
    """Restart a finished run as a new run."""
    new = call(ctx, lambda gw: gw.restart_run(run_id, from_start=from_start))
    done(f"run {run_id} restarted as run #{new.counter} ({new.id})", new, as_json)


@run.command("stop")
@click.argument("run_id")
@click.pass_obj
def stop(ctx: CliContext, run_id: str) -> None:
    """Stop a running run."""
    call(ctx, lambda gw: gw.stop_run(run_id))
    done(f"run {run_id} is stopping")


@run.command("cancel")
@click.argument("run_id")
@click.pass_obj
def cancel(ctx: CliContext, run_id: str) -> None:
    """Cancel a queued run."""
    call(ctx, lambda gw: gw.cancel_run(run_id))
    done(f"run {run_id} cancelled")


@run.command("approve")
@click.argument("run_id")
@click.argument("task")
@click.pass_obj
def approve(ctx: CliContext, run_id: str, task: str) -> None:
    """Approve a task waiting for approval (TASK: name or id)."""

    async def main(gw: GatewayClient) -> str:
        t = _task_of(await gw.get_run(run_id), task)
        await gw.approve_task(run_id, t.id)
        return str(t.name)

    name = call(ctx, main)
    done(f"task {name} of run {run_id} approved")


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
