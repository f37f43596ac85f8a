"""``agola directrun start``: run the pipeline of the local work tree without pushing anywhere
(spec §6.8).

The work tree (tracked changes, untracked files unless ``--no-untracked``, ignored files with
``--ignored``) is saved as a commit on the hidden ref ``refs/agola/directrun`` without touching
the index, HEAD or files; the commit is pushed through the gateway to
``/repos/<user id>/<repo uuid>.git`` and ``POST /user/createrun`` starts the runs.
``--follow`` then streams task statuses and logs until the runs end.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from agola.cli import CliContext
from agola.cli._output import EXIT_RUN_FAILED, CliError, call, print_json, read_yaml_source
from agola.util.userregex import UserRegexError, compile_user_regex
from agola.util.varname import VARIABLE_NAME_RULE, is_valid_variable_name

if TYPE_CHECKING:
    from agola.client import GatewayClient

DEFAULT_PR_REGEXES = (r"refs/pull/(\d+)/head", r"refs/merge-requests/(\d+)/head")


@click.group()
def directrun() -> None:
    """Run the pipeline of a local repository on agola."""


def parse_variables(var_files: tuple[str, ...], vars_: tuple[str, ...]) -> dict[str, str]:
    """Variables from ``--var-file`` maps (in order), then ``--var NAME=VALUE`` (which win)."""
    variables: dict[str, str] = {}
    for path in var_files:
        data = read_yaml_source(path)
        if data is None:
            continue
        if not isinstance(data, dict):
            raise CliError(f"{path}: a variables file is a map of name: value")
        for k, v in data.items():
            if not is_valid_variable_name(str(k)):
                raise CliError(f"{path}: invalid variable name {str(k)!r}: use {VARIABLE_NAME_RULE}")
            variables[str(k)] = "" if v is None else (str(v).lower() if isinstance(v, bool) else str(v))
    for item in vars_:
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.lstrip()
        if not sep or not name or not value:
            raise click.BadParameter(f"{item!r}: expected NAME=VALUE with a non-empty name and value", param_hint="--var")
        _check_name(name, "--var")
        variables[name] = value
    return variables


def _check_name(name: str, option: str) -> None:
    """The rule of stored variables and secrets (agola/util/varname.py), so a name that works
    here also works with `agola project variable create -n NAME`."""
    if not is_valid_variable_name(name):
        raise click.BadParameter(f"invalid variable name {name!r}: use {VARIABLE_NAME_RULE}", param_hint=option)


def parse_secrets(items: tuple[str, ...]) -> dict[str, str]:
    """``--secret NAME=VALUE`` (or ``--secret NAME``: the value of the environment variable NAME,
    which keeps it off the command line)."""
    secrets: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            value = os.environ.get(name, "")
        if not name or not value:
            where = "" if sep else f" (environment variable {name} is unset or empty)"
            raise click.BadParameter(f"{name or item!r}: expected NAME=VALUE or NAME with a non-empty value{where}",
                                     param_hint="--secret")
        _check_name(name, "--secret")
        secrets[name] = value
    return secrets


def _check_refs(branch: str | None, tag: str | None, ref: str | None, regexes: tuple[str, ...]) -> tuple[str, str, str]:
    if sum(x is not None for x in (branch, tag, ref)) > 1:
        raise click.UsageError("give at most one of --branch, --tag or --ref")
    for rx in regexes:
        try:
            compile_user_regex(rx)  # RE2, as the gateway
        except UserRegexError as exc:
            raise click.BadParameter(f"{rx!r}: {exc}", param_hint="--pull-request-ref-regexes") from None
    if tag is not None or ref is not None:
        return "", tag or "", ref or ""
    return branch or "", "", ""


@directrun.command("start", context_settings={"ignore_unknown_options": False})
@click.option("--untracked/--no-untracked", default=True, show_default=True, help="Include untracked files.")
@click.option("--ignored", is_flag=True, help="Include ignored files too.")
@click.option("--branch", default=None, help="Run as this branch (default: the work tree's branch, else master).")
@click.option("--tag", default=None, help="Run as this tag.")
@click.option("--ref", default=None, help="Run as this ref (e.g. refs/pull/1/head).")
@click.option("--pull-request-ref-regexes", "pr_regexes", multiple=True,
              help="Regexes telling pull-request refs; group 1 is the PR id (repeatable).")
@click.option("--var", "vars_", multiple=True, metavar="NAME=VALUE", help="A run variable (repeatable; wins over files).")
@click.option("--var-file", "var_files", multiple=True, metavar="FILE", help="A YAML/JSON map of variables (repeatable).")
@click.option("--secret", "secrets_", multiple=True, metavar="NAME=VALUE",
              help="A run variable shown as *** in the run's logs (repeatable; NAME alone reads $NAME; wins over --var).")
@click.option("-C", "--repo", "repo", default=".", show_default=True, help="Path inside the local repository.")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Check the pipeline file locally (as `agola pipeline check`) before pushing.")
@click.option("-f", "--follow", is_flag=True, help="Stream statuses and logs until the run ends; exit 0 only on success.")
@click.option("--follow-timeout", default=60.0, show_default=True, hidden=True,
              help="Seconds to wait for the created run to show up in the runs list.")
@click.option("--json", "as_json", is_flag=True, help="Print the pushed commit and the created run ids as JSON.")
@click.argument("ignored_args", nargs=-1, metavar="")
@click.pass_obj
def start(
    ctx: CliContext, untracked: bool, ignored: bool, branch: str | None, tag: str | None, ref: str | None,
    pr_regexes: tuple[str, ...], vars_: tuple[str, ...], var_files: tuple[str, ...], secrets_: tuple[str, ...],
    repo: str, check: bool,
    follow: bool, follow_timeout: float, as_json: bool, ignored_args: tuple[str, ...],
) -> None:
    """Save the work tree as a commit, push it to agola and start its runs.

    The index, HEAD and files are left untouched. Without --branch/--tag/--ref the run is for the
    work tree's current branch (master on a detached HEAD; Agola always used master). The
    pipeline file is checked locally first (--no-check to skip). Stray positional arguments are
    ignored, as the reference CLI does (so `--untracked false` keeps untracked files: use
    --no-untracked).
    """
    from agola.cli import _git

    branch_, tag_, ref_ = _check_refs(branch, tag, ref, pr_regexes)
    regexes = list(pr_regexes or DEFAULT_PR_REGEXES)
    secrets = parse_secrets(secrets_)
    variables = {k: v for k, v in parse_variables(var_files, vars_).items() if k not in secrets}
    try:
        root = _git.repo_root(repo)
        if not (branch_ or tag_ or ref_):
            branch_ = _git.current_branch(root) or "master"
    except _git.GitError as exc:
        raise CliError(str(exc)) from None

    def info(msg: str) -> None:
        click.echo(msg, err=True)

    if check:
        _check_locally(root, branch_, tag_, ref_)
    from agola.cli._follow import interrupted_message

    following: dict[str, Any] = {}

    async def main(gw: GatewayClient) -> int:
        from agola.client import UserCreateRunRequest

        user = await gw.current_user()
        try:
            uuid_ = _git.repo_uuid(root)
            snap = await asyncio.to_thread(_git.save_snapshot, root, untracked=untracked, ignored=ignored)
            dest = _git.destination_ref(branch_, tag_, ref_)
            url = _git.repo_push_url(ctx.gateway_url, user.id, uuid_)
            await asyncio.to_thread(_git.push_snapshot, root, snap.commit_sha, url, dest, ctx.token,
                                    maybe_pushed=snap.reused)
        except _git.GitError as exc:
            raise CliError(str(exc)) from None
        message = await asyncio.to_thread(_git.run_message, snap)
        info(f"pushed {snap.commit_sha[:12]} as {dest}")
        if branch is None and branch_:
            info(f"branch {branch_}: the work tree's branch (--branch overrides)")
        group = f"/user/{user.id}"
        known: set[str] = set()
        if follow:
            known = {r.id for r in await gw.list_runs(group, limit=40)}
        req = UserCreateRunRequest(
            repo_uuid=uuid_, repo_path=f"{user.id}/{uuid_}", commit_sha=snap.commit_sha, message=message,
            branch=branch_, tag=tag_,
            ref=ref_, pull_request_ref_regexes=regexes, variables=variables, secret_variables=secrets,
        )
        res = await gw.user_create_run(req)
        if as_json:
            print_json({"commit_sha": snap.commit_sha, "repo_uuid": uuid_, "ref": dest, "run_ids": res.run_ids})
        if not follow:
            info("run requested" + (f": {', '.join(res.run_ids)}" if res.run_ids else " (agola run list)"))
            return 0
        return await _follow(gw, group, known, snap.commit_sha, res.run_ids, follow_timeout, following)

    code = call(ctx, main, interrupted=lambda: interrupted_message(following))
    if code:
        sys.exit(code)


def _check_locally(root: str, branch: str, tag: str, ref: str) -> None:
    """The check of `agola pipeline check` on the work tree, for the ref the run will have."""
    from agola.cli.pipeline import check_pipeline
    from agola.pipeline import RunContext

    if tag:
        ctx = RunContext.for_tag(tag)
    elif ref:
        try:
            ctx = RunContext.for_ref(ref)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--ref") from None
    else:
        ctx = RunContext.for_branch(branch)
    check_pipeline(root, ctx)


async def _follow(gw: GatewayClient, group: str, known: set[str], commit_sha: str, run_ids: list[str],
                  timeout: float, following: dict[str, Any]) -> int:
    from agola.cli._follow import RunFollower, live_terminal, newest_runs_of

    ids = run_ids or await newest_runs_of(gw, group, known, commit_sha, timeout)
    if not ids:
        click.echo("no run was created (do the runs' `when` conditions exclude this ref?)", err=True)
        return 0
    follower = RunFollower(gw, click.echo, prefix_run=len(ids) > 1, live=live_terminal(len(ids)), following=following)
    finals: list[Any] = await asyncio.gather(*(follower.follow(i) for i in ids))
    return 0 if all(r.result == "success" for r in finals) else EXIT_RUN_FAILED
