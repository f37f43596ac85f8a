"""The CLI against the real control plane in one process: gateway, configstore, runservice and
gitserver roles (embedded storage), no executor, so direct runs stay queued (which is what
`run cancel` needs). See test_cli_e2e_docker.py for runs that execute.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agola.cli.main import agola
from tests.client.stack import ADMIN, RoleStack
from tests.support.waiting import wait_for_sync


@pytest.fixture
def stack(control_plane: RoleStack) -> RoleStack:
    return control_plane


def cli(stack: RoleStack, token: str, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(agola, ["--gateway-url", stack.url, "--token", token, *args], input=input)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def bootstrap(stack: RoleStack, name: str) -> str:
    ok(cli(stack, ADMIN, "user", "create", name))
    return ok(cli(stack, ADMIN, "user", "token", "create", name, "token01")).stdout.strip()


def test_bootstrap_orgs_groups_secrets_and_denials(stack: RoleStack) -> None:
    version = ok(cli(stack, "", "version"))
    assert "Gateway version:" in version.output

    tok1 = bootstrap(stack, "user01")
    tok2 = bootstrap(stack, "user02")
    assert "Username:        user01" in ok(cli(stack, tok1, "user", "show")).output
    assert [u["username"] for u in json.loads(ok(cli(stack, ADMIN, "user", "list", "--json")).stdout)] == ["user01", "user02"]

    denied = cli(stack, tok1, "user", "create", "user03")
    assert denied.exit_code == 1 and denied.output.startswith("Error: ") and len(denied.output.splitlines()) == 1
    assert "Traceback" not in denied.output

    ok(cli(stack, tok1, "org", "create", "org01"))
    ok(cli(stack, tok1, "org", "member", "add", "-n", "org01", "--username", "user02"))
    members = ok(cli(stack, tok1, "org", "member", "list", "-n", "org01")).output
    assert "user01" in members and "owner" in members and "user02" in members

    ok(cli(stack, tok1, "projectgroup", "create", "-n", "group01", "--parent", "org/org01"))
    ok(cli(stack, tok1, "projectgroup", "secret", "create", "--projectgroup", "org/org01/group01", "-n", "s1",
           "-f", "-", input="password: hunter2\n"))
    listed = ok(cli(stack, tok1, "projectgroup", "secret", "list", "--projectgroup", "org/org01/group01")).output
    assert "s1" in listed and "hunter2" not in listed
    user2_secret = cli(stack, tok2, "projectgroup", "secret", "create", "--projectgroup", "org/org01/group01",
                       "-n", "s2", "-f", "-", input="a: b\n")
    assert user2_secret.exit_code == 1 and user2_secret.output.startswith("Error: ")


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "work"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".agola").mkdir()
    (repo / ".agola" / "config.yml").write_text(
        "version: v0\nruns:\n  - name: run01\n    tasks:\n      - name: task01\n"
        "        runtime: {containers: [{image: busybox}]}\n        steps:\n          - run: env\n")
    return repo


def test_direct_run_is_created_listed_shown_and_cancelled(stack: RoleStack, tmp_path: Path) -> None:
    tok1 = bootstrap(stack, "user01")
    tok2 = bootstrap(stack, "user02")
    repo = _repo(tmp_path)

    started = json.loads(ok(cli(stack, tok1, "directrun", "start", "-C", str(repo), "--branch", "develop",
                                "--var", "A=1", "--json")).stdout)
    assert started["ref"] == "refs/heads/develop" and len(started["run_ids"]) == 1
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "refs/agola/directrun"], capture_output=True, text=True)
    assert started["commit_sha"] == head.stdout.strip()

    def listed() -> list[dict[str, object]]:
        return json.loads(ok(cli(stack, tok1, "run", "list", "--json")).stdout)
    runs = wait_for_sync(listed, 20)
    assert [r["id"] for r in runs] == started["run_ids"]
    run = runs[0]
    assert run["annotations"]["branch"] == "develop" and run["annotations"]["ref_type"] == "branch"
    assert run["phase"] == "queued"
    shown = ok(cli(stack, tok1, "run", "show", str(run["id"]))).output
    assert "task01" in shown

    other = cli(stack, tok2, "run", "show", str(run["id"]))
    assert other.exit_code == 1 and other.output.startswith("Error: ")
    other_cancel = cli(stack, tok2, "run", "cancel", str(run["id"]))
    assert other_cancel.exit_code == 1

    ok(cli(stack, tok1, "run", "cancel", str(run["id"])))
    final = json.loads(ok(cli(stack, tok1, "run", "show", str(run["id"]), "--json")).stdout)
    assert final["phase"] == "cancelled"


def test_remote_sources_groups_and_tokens(stack: RoleStack) -> None:
    tok1 = bootstrap(stack, "user01")
    created = ok(cli(stack, ADMIN, "remotesource", "create", "-n", "gitea", "--type", "gitea", "--auth-type",
                     "password", "--api-url", "http://127.0.0.1:1", "-s", "--json"))
    assert json.loads(created.stdout)["name"] == "gitea"
    ok(cli(stack, ADMIN, "remotesource", "update", "--ref", "gitea", "--no-registration-enabled"))
    [rs] = json.loads(ok(cli(stack, tok1, "remotesource", "list", "--json")).stdout)
    assert (rs["name"], rs["registration_enabled"], rs["login_enabled"]) == ("gitea", False, True)
    denied = cli(stack, tok1, "remotesource", "delete", "--ref", "gitea")
    assert denied.exit_code == 1 and denied.output.startswith("Error: ")
    ok(cli(stack, ADMIN, "remotesource", "delete", "--ref", "gitea"))
    assert json.loads(ok(cli(stack, tok1, "remotesource", "list", "--json")).stdout) == []
    needs_url = cli(stack, ADMIN, "remotesource", "create", "-n", "x", "--type", "gitea", "--auth-type", "password")
    assert needs_url.exit_code == 2

    ok(cli(stack, tok1, "projectgroup", "create", "-n", "g1", "--parent", "user/user01"))
    ok(cli(stack, tok1, "projectgroup", "update", "--ref", "user/user01/g1", "-n", "g2", "--visibility", "private"))
    [group] = json.loads(ok(cli(stack, tok1, "projectgroup", "list", "--parent", "user/user01", "--json")).stdout)
    assert (group["path"], group["visibility"]) == ("user/user01/g2", "private")
    ok(cli(stack, tok1, "projectgroup", "delete", "--ref", "user/user01/g2"))
    assert json.loads(ok(cli(stack, tok1, "projectgroup", "list", "--parent", "user/user01", "--json")).stdout) == []

    second = ok(cli(stack, tok1, "user", "token", "create", "-n", "user01", "-t", "second")).stdout.strip()
    assert "second" in ok(cli(stack, second, "user", "show")).output
    ok(cli(stack, tok1, "user", "token", "delete", "user01", "second"))
    gone = cli(stack, second, "user", "show")
    assert gone.exit_code == 1 and gone.output.startswith("Error: ")
