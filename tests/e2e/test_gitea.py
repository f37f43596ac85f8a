"""End to end with a forge: every role in one process (docker executor) and the Gitea emulator
(real git over HTTP, a real sshd), driven through the CLI as a user would.

An admin adds a Gitea OAuth2 remote source (the emulator's host key pinned); a user links their
account through the OAuth2 flow (redirects followed programmatically), creates a project on their
repository (deploy key and hook appear on the forge), pushes with the real git client: the
forge's signed webhook creates the run, the executor clones over SSH with the project's deploy key
and the run succeeds with the project's variables; an annotated tag builds the tagged commit; a
pull request from a fork builds the fork's commit without them. The notification role sets the
commit's statuses (pending, then success with the run's URL). A delivery with a bad signature
creates nothing; another SSH host key pinned makes the clone fail.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agola.forges.gitea import sign
from tests.client.stack import ADMIN, ALL, RoleStack
from tests.e2e.conftest import EXAMPLES, Session
from tests.forges.conftest import commit, follow_authorize, git, work_tree
from tests.support.forge import GiteaEmulator, ssh_available
from tests.support.services import missing
from tests.support.waiting import wait_for_sync


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, busybox_image: str) -> Iterator[tuple[RoleStack, GiteaEmulator]]:
    if not ssh_available():
        missing("openssh-server (sshd) and git-shell, for the Gitea emulator's SSH")
    emulator = GiteaEmulator(tmp_path_factory.mktemp("gitea")).start()
    roles = RoleStack(tmp_path_factory.mktemp("agola"), (*ALL, "notification"),
                      {"executor": "  docker: {network: none}\n  activeTasksLimit: 2\n"})
    roles.start()
    try:
        yield roles, emulator
    finally:
        roles.stop()
        emulator.stop()


def ok(res: Any) -> Any:
    assert res.exit_code == 0, res.output
    return res


def test_push_to_gitea_builds_the_commit(world: tuple[RoleStack, GiteaEmulator], busybox_image: str,
                                         tmp_path: Path) -> None:
    roles, emulator = world
    emulator.add_user("lena", "lena-pw")
    emulator.create_repo("lena", "site")
    app = emulator.add_oauth_app(f"{roles.url}/oauth2/callback")
    admin = Session(roles, ADMIN)
    ok(admin.cli("remotesource", "create", "-n", "gitea", "--type", "gitea", "--auth-type", "oauth2",
                 "--api-url", emulator.url, "--clientid", app.client_id, "--secret", app.client_secret,
                 "--ssh-host-key", emulator.ssh_host_key))
    ok(admin.cli("user", "create", "lena"))
    lena = Session(roles, ok(admin.cli("user", "token", "create", "lena", "t")).stdout.strip())

    authorize = ok(lena.cli("user", "linkedaccount", "create", "-n", "lena", "-r", "gitea")).output.strip().splitlines()[-1]
    ok(lena.cli("user", "linkedaccount", "complete", follow_authorize(authorize, "lena", "lena-pw")))

    project = json.loads(ok(lena.cli("project", "create", "-n", "site", "--parent", "user/lena", "--remote-source",
                                     "gitea", "--repo-path", "lena/site", "--json")).stdout)
    repo = emulator.repo("lena/site")
    assert [k.title for k in repo.keys.values()] == [f"agola deploy key - {project['id']}"]
    [hook] = repo.hooks.values()
    assert hook.url == f"{roles.url}/webhooks?projectid={project['id']}"

    pipeline = f"""version: v0
runs:
  - name: build
    tasks:
      - name: check
        runtime: {{type: pod, containers: [{{image: {busybox_image}}}]}}
        environment: {{DEPLOY_TOKEN: {{from_variable: deploytoken}}}}
        steps:
          - type: clone
          - type: run
            name: show
            command: cat README; echo "token=[$DEPLOY_TOKEN]"
"""
    secret, values = tmp_path / "secret.yml", tmp_path / "values.yml"
    secret.write_text("token: s3cr3t-deploy-value\n")
    values.write_text("- {secret_name: creds, secret_var: token}\n")
    ok(lena.cli("project", "secret", "create", "--project", "user/lena/site", "-n", "creds", "-f", str(secret)))
    ok(lena.cli("project", "variable", "create", "--project", "user/lena/site", "-n", "deploytoken", "-f", str(values)))
    tree = work_tree(tmp_path / "site", {".agola/config.yml": pipeline, "README": "hello from gitea\n"}, "site v1")
    git("push", "-q", emulator.http_url("lena/site", "lena"), "main", cwd=tree)

    def finished() -> dict[str, Any] | None:
        rows = json.loads(ok(lena.cli("run", "list", "--project", "user/lena/site", "--json")).stdout)
        return rows[0] if rows and rows[0]["phase"] in ("finished", "setuperror") else None

    run = wait_for_sync(finished, timeout=120, interval=0.5, message="the pushed commit's run finishes")
    logs = lena.cli("run", "logs", run["id"], "--project", "user/lena/site", "--task", "check", "--step", "1")
    assert run["result"] == "success", (lena.cli("run", "show", run["id"], "--json").output, logs.output)
    assert "hello from gitea" in logs.output and "token=[]" not in logs.output  # the variable was given
    clone = lena.cli("run", "logs", run["id"], "--project", "user/lena/site", "--task", "check", "--step", "0")
    assert f"ssh://***@127.0.0.1:{emulator.forge.ssh_port}/lena/site.git" in clone.output  # over SSH
    assert run["annotations"]["commit_sha"] == git("rev-parse", "HEAD", cwd=tree)

    # The notification role set the commit's statuses on the forge: pending, then success.
    def statuses() -> list[str] | None:
        states = [st.state for st in emulator.statuses("lena/site", run["annotations"]["commit_sha"])]
        return states if states and states[-1] == "success" else None

    assert wait_for_sync(statuses, timeout=30, message="commit statuses")[0] == "pending"
    final = emulator.statuses("lena/site", run["annotations"]["commit_sha"])[-1]
    assert run["id"] in final.target_url and "site" in final.context

    # A tag push builds the tagged commit (annotated tag: not the tag object) the same way.
    git("tag", "-a", "v1.0", "-m", "release 1.0", cwd=tree)
    git("push", "-q", emulator.http_url("lena/site", "lena"), "v1.0", cwd=tree)

    def tag_finished() -> dict[str, Any] | None:
        rows = json.loads(ok(lena.cli("run", "list", "--project", "user/lena/site", "--json")).stdout)
        tags = [r for r in rows if r["annotations"].get("tag") == "v1.0"]
        return tags[0] if tags and tags[0]["phase"] in ("finished", "setuperror") else None

    tag_run = wait_for_sync(tag_finished, timeout=120, interval=0.5, message="the tag's run finishes")
    assert tag_run["result"] == "success" and tag_run["annotations"]["commit_sha"] == run["annotations"]["commit_sha"]
    assert tag_run["annotations"]["message"] == "Tag v1.0"

    # A pull request from a fork builds the fork's commit, without the project's secrets.
    emulator.add_user("mike", "mike-pw")
    emulator.fork_repo("lena/site", "mike")
    git("checkout", "-q", "-b", "patch", cwd=tree)
    commit(tree, {"README": "patched by a fork\n"}, "fork change")
    git("push", "-q", emulator.http_url("mike/site", "mike"), "patch", cwd=tree)
    emulator.open_pull_request("lena/site", "mike/site", "patch", "Patch from mike")

    def pr_finished() -> dict[str, Any] | None:
        rows = json.loads(ok(lena.cli("run", "list", "--project", "user/lena/site", "--json")).stdout)
        prs = [r for r in rows if r["annotations"].get("ref_type") == "pull_request"]
        return prs[0] if prs and prs[0]["phase"] in ("finished", "setuperror") else None

    pr_run = wait_for_sync(pr_finished, timeout=120, interval=0.5, message="the fork PR's run finishes")
    pr_logs = lena.cli("run", "logs", pr_run["id"], "--project", "user/lena/site", "--task", "check", "--step", "1")
    assert pr_run["result"] == "success", (pr_run, pr_logs.output)
    assert "patched by a fork" in pr_logs.output and "token=[]" in pr_logs.output

    # A forged delivery (signed with a guessed secret) is refused and creates nothing.
    delivery = next(d for d in emulator.deliveries if d.hook_url == hook.url)
    req = urllib.request.Request(hook.url, data=delivery.body, method="POST", headers={
        "Content-Type": "application/json", "X-Gitea-Event": "push", "X-Gitea-Delivery": "forged",
        "X-Gitea-Signature": sign("guessed-secret", delivery.body)})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req)
    assert info.value.code == 401
    rows = json.loads(ok(lena.cli("run", "list", "--project", "user/lena/site", "--json")).stdout)
    assert len(rows) == 3

    # The forge's SSH host key is checked: with another key pinned, the clone is refused.
    other_key = emulator.ssh_host_key.rsplit(" ", 1)[0] + " AAAAC3NzaC1lZDI1NTE5AAAAIOtherHostKeyOtherHostKeyOtherHostKey0"
    ok(admin.cli("remotesource", "update", "--ref", "gitea", "--ssh-host-key", other_key))
    ok(lena.cli("run", "create", "--project", "user/lena/site", "--branch", "main"))

    def manual_finished() -> dict[str, Any] | None:
        rows = json.loads(ok(lena.cli("run", "list", "--project", "user/lena/site", "--json")).stdout)
        return rows[0] if len(rows) == 4 and rows[0]["phase"] == "finished" else None

    refused = wait_for_sync(manual_finished, timeout=120, interval=0.5, message="the manual run finishes")
    clone = lena.cli("run", "logs", refused["id"], "--project", "user/lena/site", "--task", "check", "--step", "0")
    assert refused["result"] == "failed" and "Host key verification failed" in clone.output, clone.output


def test_the_gitea_demo_example(busybox_image: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``examples/gitea/demo.py``, the README's one-command demo, ends with a successful run and
    the commit's statuses on the forge."""
    if not ssh_available():
        missing("openssh-server (sshd) and git-shell, for the Gitea emulator's SSH")
    import importlib.util

    spec = importlib.util.spec_from_file_location("gitea_demo", EXAMPLES / "gitea" / "demo.py")
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    assert demo.main() == 0
    out = capsys.readouterr().out
    assert "project user/alice/hello created" in out and "package: hello from agola" in out
    assert "#   success  agola/hello/hello" in out and out.rstrip().endswith("result: success")
