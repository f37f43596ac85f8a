"""The CLI as a person uses it, against the real control plane (gateway, configstore, runservice,
gitserver; no executor, so runs stay queued): runs named by their counter, the work tree's
branch and commit message for direct runs, the local check before pushing, readable run lists.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from click.testing import CliRunner, Result

from agola.cli.main import agola
from tests.client.stack import ADMIN, RoleStack
from tests.support.waiting import wait_for_sync

PIPELINE = (
    "runs:\n  - name: run01\n    tasks:\n      - name: task01\n"
    "        runtime: {containers: [{image: busybox}]}\n        steps:\n          - run: env\n"
)


def cli(stack: RoleStack, token: str, *args: str) -> Result:
    return CliRunner().invoke(agola, ["--gateway-url", stack.url, "--token", token, *args])


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def _git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x", "PATH": "/usr/bin:/bin:/usr/local/bin"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "work"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "feature-x")
    (repo / ".agola").mkdir()
    (repo / ".agola" / "config.yml").write_text(PIPELINE)
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "add the pipeline\n\nwith a body")
    return repo


def test_direct_runs_by_counter_branch_message_and_list(control_plane: RoleStack, tmp_path: Path) -> None:
    stack = control_plane
    ok(cli(stack, ADMIN, "user", "create", "user01"))
    token = ok(cli(stack, ADMIN, "user", "token", "create", "user01", "t1")).stdout.strip()
    repo = _repo(tmp_path)

    first = ok(cli(stack, token, "directrun", "start", "-C", str(repo)))
    assert "branch feature-x: the work tree's branch (--branch overrides)" in first.output
    (repo / "dirty.txt").write_text("x")
    ok(cli(stack, token, "directrun", "start", "-C", str(repo), "--branch", "main"))

    def listed() -> list[dict[str, object]]:
        runs: list[dict[str, object]] = json.loads(ok(cli(stack, token, "run", "list", "--json")).stdout)
        assert len(runs) == 2
        return runs

    newest, oldest = wait_for_sync(listed, 20)
    assert isinstance(oldest["annotations"], dict) and isinstance(newest["annotations"], dict)
    assert oldest["annotations"]["branch"] == "feature-x"
    assert oldest["annotations"]["message"] == "add the pipeline\n\nwith a body"
    assert newest["annotations"]["branch"] == "main"
    assert newest["annotations"]["message"] == "uncommitted changes"

    table = ok(cli(stack, token, "run", "list")).output.splitlines()
    assert table[0].split() == ["#", "GROUP", "BRANCH", "STATUS", "DURATION", "STARTED", "NAME", "ID"]
    assert table[1].split()[:4] == [str(newest["counter"]), "direct", "main", "queued"]

    for ref in (str(oldest["counter"]), f"#{oldest['counter']}"):
        shown = ok(cli(stack, token, "run", "show", ref, "--json")).stdout
        assert json.loads(shown)["id"] == oldest["id"]
    text = ok(cli(stack, token, "run", "show", f"#{oldest['counter']}")).output
    assert "Message:" in text and "add the pipeline" in text and "Branch:" in text
    missing = cli(stack, token, "run", "show", "#999")
    assert missing.exit_code == 1 and missing.output.startswith("Error: no run #999 in your direct runs")

    not_waiting = cli(stack, token, "run", "approve", str(oldest["counter"]), "task01")
    assert not_waiting.exit_code == 1
    assert "task task01 of run" in not_waiting.output and "is not waiting for an approval" in not_waiting.output
    ok(cli(stack, token, "run", "cancel", f"#{oldest['counter']}"))


def test_direct_run_checks_the_pipeline_before_pushing(control_plane: RoleStack, tmp_path: Path) -> None:
    stack = control_plane
    ok(cli(stack, ADMIN, "user", "create", "user01"))
    token = ok(cli(stack, ADMIN, "user", "token", "create", "user01", "t1")).stdout.strip()
    repo = _repo(tmp_path)
    (repo / ".agola" / "config.yml").write_text(PIPELINE.replace("        runtime: {containers: [{image: busybox}]}\n", ""))

    broken = cli(stack, token, "directrun", "start", "-C", str(repo))
    assert broken.exit_code == 1
    assert 'config.yml:4:9: runs[0].tasks[0]: task "task01": runtime is not defined' in broken.output
    assert "pushed" not in broken.output
    assert subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "-q", "refs/agola/directrun"],
                          capture_output=True).returncode != 0

    unchecked = ok(cli(stack, token, "directrun", "start", "-C", str(repo), "--no-check", "--json"))
    [run_id] = json.loads(unchecked.stdout)["run_ids"]

    def setup_error() -> str:
        shown = ok(cli(stack, token, "run", "show", run_id)).output
        assert "setuperror" in shown
        return shown

    shown = wait_for_sync(setup_error, 20)
    assert "Result:   failed" in shown or any(
        line.startswith("Result:") and line.split()[-1] == "failed" for line in shown.splitlines()
    )


def test_one_variable_name_rule_and_aligned_version(control_plane: RoleStack, tmp_path: Path) -> None:
    stack = control_plane
    ok(cli(stack, ADMIN, "user", "create", "user01"))
    token = ok(cli(stack, ADMIN, "user", "token", "create", "user01", "t1")).stdout.strip()
    group = ["--projectgroup", "user/user01"]
    secret = CliRunner().invoke(agola, ["-u", stack.url, "--token", token, "projectgroup", "secret", "create", *group,
                                        "-n", "DEPLOY_CREDS", "-f", "-"], input="password: s3cret\n")
    ok(secret)
    values = tmp_path / "var.yml"
    values.write_text("- secret_name: DEPLOY_CREDS\n  secret_var: password\n")
    # The docs' example: an environment-style name is a valid stored variable name...
    ok(cli(stack, token, "projectgroup", "variable", "create", *group, "-n", "DEPLOY_PASSWORD", "-f", str(values)))
    listed = ok(cli(stack, token, "projectgroup", "variable", "list", *group)).output
    assert "DEPLOY_PASSWORD" in listed
    # ... and a name refused when stored is refused by --var, with the same rule.
    stored = cli(stack, token, "projectgroup", "variable", "create", *group, "-n", "DEPLOY.PASSWORD", "-f", str(values))
    assert stored.exit_code == 1 and stored.stdout == ""
    assert stored.stderr == ("Error: invalid variable name 'DEPLOY.PASSWORD': use letters, digits, '_' and '-', "
                             "starting with a letter or '_' (at most 255)\n")
    direct = cli(stack, token, "directrun", "start", "-C", str(_repo(tmp_path)), "--var", "DEPLOY.PASSWORD=x")
    assert direct.exit_code == 2
    assert ("invalid variable name 'DEPLOY.PASSWORD': use letters, digits, '_' and '-', "
            "starting with a letter or '_'") in direct.stderr

    lines = ok(cli(stack, token, "version")).stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["Client version", "Gateway version"]
    assert len({line.index(line.split()[-1]) for line in lines}) == 1  # the values line up
