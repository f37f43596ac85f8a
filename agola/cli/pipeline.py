"""``agola pipeline check`` and ``agola pipeline show``: work on a pipeline file locally.

Neither command talks to a server: they load the repository's ``.agola/config.*`` exactly as the
gateway would when a commit is pushed, report every problem with its location, and preview the
task DAG that a run would get.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import click

from agola.pipeline import (
    GeneratedRun,
    PipelineConfig,
    PipelineError,
    PipelineNotFound,
    RunContext,
    ci_skip,
    generate_run,
    load_pipeline,
    parse_pipeline,
    run_matches,
)
from agola.pipeline.dag import levels
from agola.pipeline.errors import by_location
from agola.pipeline.schema import Run, When, WhenConditions, WhenConditionType
from agola.util.duration import format_duration, to_nanoseconds

# Stable task ids for `show --json`, so two previews of the same file can be diffed.
_ID_NAMESPACE = uuid.UUID("6f1c2a52-8c1e-4d61-9a55-9e1f0d8e7a11")


def _ref_options(func: Any) -> Any:
    func = click.option("--commit-sha", default="", help="Commit SHA given to jsonnet/starlark as ctx.commit_sha.")(func)
    func = click.option("--ref", default=None, help="A full ref (refs/heads/x, refs/tags/x, refs/pull/N/head).")(func)
    func = click.option("--tag", default=None, help="Evaluate for this tag.")(func)
    func = click.option("--branch", default=None, help="Evaluate for this branch (default: master).")(func)
    return func


def _context(branch: str | None, tag: str | None, ref: str | None, commit_sha: str) -> RunContext:
    given = [x for x in (branch, tag, ref) if x is not None]
    if len(given) > 1:
        raise click.UsageError("only one of --branch, --tag or --ref may be given")
    if tag is not None:
        return RunContext.for_tag(tag, commit_sha)
    if ref is not None:
        try:
            return RunContext.for_ref(ref, commit_sha)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--ref") from None
    return RunContext.for_branch(branch if branch is not None else "master", commit_sha)


def _load(path: str, ctx: RunContext) -> PipelineConfig:
    """Load a file, a ``.agola`` dir or a repository dir; print errors and exit 1 on failure."""
    return check_pipeline(path, ctx)


def check_pipeline(path: str, ctx: RunContext) -> PipelineConfig:
    """The checker of ``agola pipeline check`` (also run by ``directrun start`` before pushing):
    load a file, a ``.agola`` dir or a repository dir as the gateway would. On failure print every
    error sorted by location, then the warnings, and exit 1."""
    try:
        if os.path.isfile(path):
            with open(path, "rb") as fh:
                return parse_pipeline(path, fh.read(), ctx)
        return load_pipeline(path, ctx)
    except PipelineNotFound as exc:
        raise click.ClickException(exc.message) from None
    except PipelineError as exc:
        for err in by_location(exc.errors):
            click.echo(str(err))
        for warning in by_location(exc.warnings):
            click.echo(f"warning: {warning}")
        count = len(exc.errors)
        click.echo(f"Error: {count} error{'s' if count != 1 else ''} in the pipeline file", err=True)
    raise SystemExit(1)


@click.group("pipeline")
def pipeline() -> None:
    """Check and inspect pipeline files (.agola/config.*) locally."""


@pipeline.command("check")
@click.argument("path", default=".", required=False, type=click.Path(exists=True))
@_ref_options
def check(path: str, branch: str | None, tag: str | None, ref: str | None, commit_sha: str) -> None:
    """Validate the pipeline file of PATH (a repository, its .agola dir, or a file).

    Prints `ok` and one line per run (then warnings, e.g. unknown keys, which are ignored), or
    every error with its location; exits 1 on errors.
    Jsonnet and Starlark files are evaluated for --branch/--tag/--ref (default: branch master).
    """
    ctx = _context(branch, tag, ref, commit_sha)
    config = _load(path, ctx)
    click.echo("ok")
    for run in config.runs:
        click.echo(_summary(run))
    for warning in by_location(config.warnings):
        click.echo(f"warning: {warning}")


def _summary(run: Run) -> str:
    graph = {t.name: [d.task for d in t.depends] for t in run.tasks}
    depth = max(levels(graph).values(), default=-1) + 1
    tasks = len(run.tasks)
    line = f'run "{run.name}": {tasks} task{"s" if tasks != 1 else ""}, {depth} level{"s" if depth != 1 else ""}'
    if run.when is not None:
        line += f", when {describe_when(run.when)}"
    return line


def describe_when(when: When) -> str:
    parts = []
    for kind in ("branch", "tag", "ref"):
        conds: WhenConditions | None = getattr(when, kind)
        if conds is None:
            continue
        text = ",".join(_cond(c) for c in conds.include) or "(none)"
        if conds.exclude:
            text += " except " + ",".join(_cond(c) for c in conds.exclude)
        parts.append(f"{kind} {text}")
    return "; ".join(parts) or "(never)"


def _cond(c: Any) -> str:
    return f"/{c.match}/" if c.type is WhenConditionType.REGEXP else c.match


def _parse_vars(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--var")
        out[name] = value
    return out


@pipeline.command("show")
@click.argument("path", default=".", required=False, type=click.Path(exists=True))
@_ref_options
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="A run variable (repeatable).")
@click.option("--message", default="", help="Commit message ([ci skip] creates no run).")
@click.option("--json", "as_json", is_flag=True, help="Print the generated run configs as JSON.")
def show(
    path: str,
    branch: str | None,
    tag: str | None,
    ref: str | None,
    commit_sha: str,
    variables: tuple[str, ...],
    message: str,
    as_json: bool,
) -> None:
    """Show the task DAG each run would get for a ref: levels, depends and skipped tasks."""
    ctx = _context(branch, tag, ref, commit_sha)
    resolved = _parse_vars(variables)
    config = _load(path, ctx)
    skip_all = ci_skip(message)
    generated: list[GeneratedRun] = []
    not_created: list[tuple[str, str]] = []
    for run in config.runs:
        if skip_all:
            not_created.append((run.name, "commit message contains [ci skip]"))
        elif not run_matches(run, ctx):
            assert run.when is not None  # a run without `when` matches every ref
            not_created.append((run.name, f"when ({describe_when(run.when)}) does not match {_ref_text(ctx)}"))
        else:
            generated.append(generate_run(config, run, ctx, resolved, _stable_ids(run.name)))
    if as_json:
        click.echo(json.dumps([r.to_json() for r in generated], indent=2))
        return
    for generated_run in generated:
        _print_run(generated_run)
    for name, why in not_created:
        click.echo(f'run "{name}": not created: {why}')


def _ref_text(ctx: RunContext) -> str:
    if ctx.ref_type == "branch":
        return f"branch {ctx.branch}"
    if ctx.ref_type == "tag":
        return f"tag {ctx.tag}"
    return f"ref {ctx.ref}"


def _stable_ids(run_name: str) -> Any:
    return lambda task_name: str(uuid.uuid5(_ID_NAMESPACE, f"{run_name}/{task_name}"))


def _print_run(run: GeneratedRun) -> None:
    click.echo(f'run "{run.name}"')
    names = {t.id: t.name for t in run.tasks.values()}
    for index, tasks in enumerate(run.levels()):
        click.echo(f"  level {index}")
        for task in tasks:
            line = f"    {task.name}"
            if task.depends:
                deps = ", ".join(
                    f"{names[d.task_id]} ({'|'.join(d.conditions)})" for d in task.depends.values()
                )
                line += f"  <- {deps}"
            flags = []
            if task.skip:
                flags.append("skipped: when does not match")
            if task.needs_approval:
                flags.append("needs approval")
            if task.ignore_failure:
                flags.append("ignore failure")
            if task.task_timeout_interval:
                flags.append(f"timeout {format_duration(to_nanoseconds(task.task_timeout_interval))}")
            if flags:
                line += "  [" + "; ".join(flags) + "]"
            click.echo(line)
            for step in task.steps:
                click.echo(f"      - {step.type}: {step.name}" if step.name else f"      - {step.type}")
