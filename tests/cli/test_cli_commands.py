"""The ``agola`` client commands through click's CliRunner: output a user reads (tables, JSON,
one-line errors, exit statuses) and the requests that reach the gateway.

Run against ``FakeGateway`` (tests/client/fakegateway.py, the §6.2 wire format) for scripted,
fast runs; the same commands against the real roles are in test_cli_real_gateway.py and
test_cli_e2e_docker.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agola.cli.main import agola
from tests.client.fakegateway import ADMIN_TOKEN, FakeGateway
from tests.support.services import free_port


def cli(gw_url: str, token: str, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(agola, ["--gateway-url", gw_url, "--token", token, *args], input=input)


def test_bootstrap_first_user_and_token_with_the_admin_token(fake_gateway: FakeGateway) -> None:
    created = cli(fake_gateway.url, ADMIN_TOKEN, "user", "create", "user01")
    assert created.exit_code == 0, created.output
    assert created.output.startswith("user user01 created (id ")

    token = cli(fake_gateway.url, ADMIN_TOKEN, "user", "token", "create", "user01", "token01")
    assert token.exit_code == 0
    value = token.stdout.strip()
    assert len(value.splitlines()) == 1 and value  # only the token: `TOKEN=$(...)` works

    me = cli(fake_gateway.url, value, "user", "show")
    assert me.exit_code == 0
    assert "Username:        user01" in me.output and "token01" in me.output

    # The reference's option spelling works too.
    other = cli(fake_gateway.url, ADMIN_TOKEN, "user", "create", "-n", "user02")
    assert other.exit_code == 0
    table = cli(fake_gateway.url, ADMIN_TOKEN, "user", "list")
    lines = table.output.splitlines()
    assert lines[0].split() == ["ID", "USERNAME"]
    assert [line.split()[1] for line in lines[1:]] == ["user01", "user02"]
    rows = json.loads(cli(fake_gateway.url, ADMIN_TOKEN, "user", "list", "--json").stdout)
    assert [r["username"] for r in rows] == ["user01", "user02"]


def test_errors_are_one_line_with_the_server_message_and_non_zero_exit(fake_gateway: FakeGateway) -> None:
    fake_gateway.add_user("user01", token="tok")
    denied = cli(fake_gateway.url, "tok", "user", "create", "user02")
    assert denied.exit_code == 1
    assert denied.output == "Error: only an administrator can do this\n"

    missing = cli(fake_gateway.url, ADMIN_TOKEN, "user", "delete", "nobody")
    assert (missing.exit_code, missing.output) == (1, "Error: user 'nobody' doesn't exist\n")

    down = cli(f"http://127.0.0.1:{free_port()}", "tok", "user", "show")
    assert down.exit_code == 1 and down.output.startswith("Error: cannot reach the gateway at")
    assert "Traceback" not in down.output and len(down.output.splitlines()) == 1

    usage = cli(fake_gateway.url, ADMIN_TOKEN, "user", "create")
    assert usage.exit_code == 2 and "missing user name" in usage.output


def test_orgs_members_and_secrets(fake_gateway: FakeGateway, tmp_path: Path) -> None:
    fake_gateway.add_user("user01", token="tok")
    assert cli(fake_gateway.url, "tok", "org", "create", "-n", "org01").exit_code == 0
    listed = cli(fake_gateway.url, "tok", "org", "member", "list", "-n", "org01")
    assert listed.output.splitlines()[1].split()[:2] == ["user01", "owner"]

    created = cli(fake_gateway.url, "tok", "project", "create", "-n", "p1", "--parent", "user/user01",
                  "--repo-path", "user01/repo", "--remote-source", "gitea")
    assert created.exit_code == 0, created.output
    secret = cli(fake_gateway.url, "tok", "project", "secret", "create", "--project", "user/user01/p1", "-n", "s1",
                 "-f", "-", input="password: hunter2\nport: 22\n")
    assert secret.exit_code == 0, secret.output
    body = next(r.body for r in fake_gateway.state.requests if r.path.endswith("/secrets") and r.method == "POST")
    assert body == {"name": "s1", "type": "internal", "data": {"password": "hunter2", "port": "22"}}

    varfile = tmp_path / "var.yml"
    varfile.write_text("- secret_name: s1\n  secret_var: password\n  when: {branch: master}\n")
    var = cli(fake_gateway.url, "tok", "projectgroup", "variable", "create", "--projectgroup", "user/user01",
              "-n", "v1", "-f", str(varfile))
    assert var.exit_code == 0, var.output
    shown = cli(fake_gateway.url, "tok", "projectgroup", "variable", "list", "--projectgroup", "user/user01")
    assert shown.output.splitlines()[1].split() == ["v1", "user/user01", "s1.password", "(when)"]

    bad = cli(fake_gateway.url, "tok", "project", "secret", "create", "--project", "x", "-n", "s", "-f", "-",
              input="[1, 2]\n")
    assert bad.exit_code == 1 and "a secret file is a map" in bad.output


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "work"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "master", str(repo)], check=True)
    (repo / ".agola").mkdir()
    # Untracked, as in the reference tests; valid, since directrun checks it before pushing.
    (repo / ".agola" / "config.yml").write_text(
        "runs: [{name: run01, tasks: [{name: task01, runtime: {containers: [{image: busybox}]}}]}]\n")
    return repo


def test_directrun_follow_streams_logs_and_exits_zero_on_success(fake_gateway: FakeGateway, tmp_path: Path) -> None:
    user = fake_gateway.add_user("user01", token="tok")
    repo = _repo(tmp_path)
    varfile = tmp_path / "vars.yml"
    varfile.write_text('variable01: "from file"\nvariable02: file value\n')

    res = cli(fake_gateway.url, "tok", "directrun", "start", "-C", str(repo), "--untracked", "false",
              "--var-file", str(varfile), "--var", "variable02=VALUE02", "--follow")

    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "[task01] --- step 1: hello" in out
    assert "[task01] line 0\n[task01] line 1\n[task01] line 2\n" in out  # CRs of the tty dropped
    assert "[task01] --- step 1: success (exit status 0)" in out
    assert out.rstrip().endswith("finished, result success")
    body = fake_gateway.state.created_runs[0]
    uuid_ = subprocess.run(["git", "-C", str(repo), "config", "agola.repouuid"], capture_output=True, text=True).stdout.strip()
    assert body["repo_uuid"] == uuid_ and body["repo_path"] == f"{user['id']}/{uuid_}"
    assert body["branch"] == "master" and body["variables"] == {"variable01": "from file", "variable02": "VALUE02"}
    pushed = fake_gateway.store.root / user["id"] / f"{uuid_}.git"
    files = subprocess.run(["git", "--git-dir", str(pushed), "ls-tree", "-r", "--name-only", "master"],
                           capture_output=True, text=True).stdout.split()
    assert files == [".agola/config.yml"]  # `--untracked false` kept the default, like the reference
    assert subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True,
                          text=True).stdout == "?? .agola/\n"


def test_directrun_follow_of_a_failing_run_exits_non_zero(fake_gateway: FakeGateway, tmp_path: Path) -> None:
    fake_gateway.add_user("user01", token="tok")
    fake_gateway.state.return_run_ids = True  # a gateway that answers with the created runs
    res = cli(fake_gateway.url, "tok", "directrun", "start", "-C", str(_repo(tmp_path)), "--tag", "v1",
              "--var", "FAIL=1", "-f")
    assert res.exit_code == 3, res.output
    assert "[task01] --- step 1: failed (exit status 1)" in res.stdout
    assert res.stdout.rstrip().endswith("finished, result failed")
    body = fake_gateway.state.created_runs[0]
    assert (body["branch"], body["tag"], body["ref"]) == ("", "v1", "")


def test_directrun_argument_checks(fake_gateway: FakeGateway, tmp_path: Path) -> None:
    fake_gateway.add_user("user01", token="tok")
    two = cli(fake_gateway.url, "tok", "directrun", "start", "--branch", "a", "--tag", "b")
    assert two.exit_code == 2 and "at most one of --branch, --tag or --ref" in two.output
    bad_var = cli(fake_gateway.url, "tok", "directrun", "start", "--var", "novalue=")
    assert bad_var.exit_code == 2 and "NAME=VALUE" in bad_var.output
    bad_rx = cli(fake_gateway.url, "tok", "directrun", "start", "--pull-request-ref-regexes", "(")
    assert bad_rx.exit_code == 2
    not_repo = cli(fake_gateway.url, "tok", "directrun", "start", "-C", str(tmp_path))
    assert not_repo.exit_code == 1 and "not inside a git work tree" in not_repo.output
    assert fake_gateway.state.created_runs == []


def test_run_list_show_logs(fake_gateway: FakeGateway, tmp_path: Path) -> None:
    fake_gateway.add_user("user01", token="tok")
    fake_gateway.state.line_interval = 0.0
    started = cli(fake_gateway.url, "tok", "directrun", "start", "-C", str(_repo(tmp_path)), "--ref", "refs/pull/1/head", "-f")
    assert started.exit_code == 0, started.output
    body = fake_gateway.state.created_runs[0]
    assert body["ref"] == "refs/pull/1/head" and body["branch"] == ""

    listed = cli(fake_gateway.url, "tok", "run", "list")
    header, row = listed.output.splitlines()
    assert header.split() == ["#", "GROUP", "BRANCH", "STATUS", "DURATION", "STARTED", "NAME", "ID"]
    run_id = row.split()[-1]
    assert row.split()[1:4] == ["direct", "refs/pull/1/head", "finished/success"]
    assert row.split()[-2] == "run01"

    shown = cli(fake_gateway.url, "tok", "run", "show", run_id)
    assert "Phase:    finished" in shown.output and "task01" in shown.output
    assert json.loads(cli(fake_gateway.url, "tok", "run", "show", run_id, "--json").stdout)["result"] == "success"

    step = cli(fake_gateway.url, "tok", "run", "logs", run_id, "--task", "task01", "--step", "1")
    assert step.output == "line 0\nline 1\nline 2\n"
    setup = cli(fake_gateway.url, "tok", "run", "logs", run_id, "-t", "task01", "--setup")
    assert setup.output == "pulling image\n"
    whole = cli(fake_gateway.url, "tok", "run", "logs", run_id)
    assert "[task01] --- setup\n[task01] pulling image\n" in whole.output and "[task01] cloned" in whole.output
    assert whole.output.splitlines()[-1].startswith("==> [task01] success")  # its status after its logs

    deleted = cli(fake_gateway.url, "tok", "run", "logs", run_id, "-t", "task01", "--setup", "--delete")
    assert deleted.exit_code == 0
    gone = cli(fake_gateway.url, "tok", "run", "logs", run_id, "-t", "task01", "--setup")
    assert (gone.exit_code, gone.output) == (1, "Error: log doesn't exist\n")
    no_task = cli(fake_gateway.url, "tok", "run", "logs", run_id, "-t", "nope", "--step", "0")
    assert no_task.exit_code == 1 and "has no task 'nope' (tasks: task01)" in no_task.output

    cancel = cli(fake_gateway.url, "tok", "run", "cancel", run_id)
    assert cancel.exit_code == 1 and cancel.output.startswith("Error: run is not queued")
    restarted = cli(fake_gateway.url, "tok", "run", "restart", run_id, "--from-start")
    assert restarted.exit_code == 0
    assert fake_gateway.state.requests[-1].body == {"action_type": "restart", "from_start": True}


def test_help_does_not_import_the_http_stack() -> None:
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "agola.cli.main", "run", "--help"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "logs" in out.stdout
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines()}
    assert "aiohttp" not in imported and "agola.client" not in imported


@pytest.mark.parametrize("command", ["user", "org", "projectgroup", "project", "run", "directrun", "remotesource"])
def test_groups_print_help(command: str) -> None:
    res = CliRunner().invoke(agola, [command])
    assert res.exit_code in (0, 2) and "Commands:" in res.output


def test_missing_token_gets_a_hint(fake_gateway: FakeGateway) -> None:
    res = CliRunner().invoke(agola, ["--gateway-url", fake_gateway.url, "run", "list"], env={"AGOLA_TOKEN": ""})
    assert res.exit_code == 1
    assert res.output == "Error: unauthorized (no token given: agola login, or --token / AGOLA_TOKEN)\n"


def test_environment_variables_configure_the_client(fake_gateway: FakeGateway) -> None:
    fake_gateway.add_user("user01", token="tok")
    res = CliRunner().invoke(agola, ["user", "show", "--json"],
                             env={"AGOLA_GATEWAY_URL": fake_gateway.url, "AGOLA_TOKEN": "tok"})
    assert res.exit_code == 0 and json.loads(res.stdout)["username"] == "user01"


def test_run_logs_follow_of_one_step(fake_gateway: FakeGateway, tmp_path: Path) -> None:
    fake_gateway.add_user("user01", token="tok")
    fake_gateway.state.return_run_ids = True
    started = cli(fake_gateway.url, "tok", "directrun", "start", "-C", str(_repo(tmp_path)))
    assert started.exit_code == 0, started.output
    run_id = started.stderr.strip().splitlines()[-1].split(": ")[-1]
    # Started right away: the step has not begun yet, --follow waits for it, then streams it live.
    step = cli(fake_gateway.url, "tok", "run", "logs", run_id, "-t", "task01", "--step", "1", "-f")
    assert (step.exit_code, step.output) == (0, "line 0\nline 1\nline 2\n")
    missing = cli(fake_gateway.url, "tok", "run", "logs", run_id, "-t", "task01", "--step", "7", "-f")
    assert (missing.exit_code, missing.output) == (1, "Error: task task01 has 2 steps (0 to 1): no step 7\n")


def test_version_prints_client_and_gateway(fake_gateway: FakeGateway) -> None:
    from agola import __version__

    res = cli(fake_gateway.url, "", "version")
    assert res.exit_code == 0
    assert res.output == f"Client version:  {__version__}\nGateway version: {__version__}\n"
    assert json.loads(cli(fake_gateway.url, "", "version", "--json").stdout) == {
        "client": __version__, "gateway": __version__}


def test_completion_script_and_lazy_completion() -> None:
    script = CliRunner().invoke(agola, ["completion", "bash"])
    assert script.exit_code == 0 and "_AGOLA_COMPLETE=bash_complete" in script.output
    out = subprocess.run([sys.executable, "-m", "agola.cli.main"], capture_output=True, text=True,
                         env={"COMP_WORDS": "agola run l", "COMP_CWORD": "2", "_AGOLA_COMPLETE": "bash_complete",
                              "PATH": "/usr/bin:/bin"})
    assert out.stdout.split() == ["plain,list", "plain,logs"]
