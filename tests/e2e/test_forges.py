"""End to end with each forge: every role in one process (docker executor) and the forge emulator
speaking Gitea, GitHub or GitLab (real git over HTTP, a real sshd, each forge's API, OAuth2 and
webhooks), driven through the CLI as a user would. One stack serves the three forges.

An admin adds an OAuth2 remote source of the forge (the emulator's host key pinned); a user links
their account through the OAuth2 flow (redirects followed programmatically), creates a project on
their repository (read-only deploy key and hook appear on the forge), pushes with the real git
client: the forge's webhook (its own payload, headers and signature or token) creates the run,
the executor clones over SSH with the project's deploy key and the run succeeds with the project's
variables; an annotated tag builds the tagged commit; a pull (merge) request from a fork builds
the fork's commit without them. The notification role sets the commit's statuses (pending, then
success with the run's URL). A delivery with a bad signature or token, and a well signed one for
another repository, create nothing; another SSH host key pinned makes the clone fail.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agola.forges import gitea, github
from tests.client.stack import ADMIN, ALL, RoleStack
from tests.e2e.conftest import Session
from tests.forges.conftest import commit, follow_authorize, git, work_tree
from tests.forges.test_github_gitlab_gateway import post
from tests.support.forge import DIALECTS, Delivery, ForgeEmulator, ssh_available
from tests.support.forge.model import Hook
from tests.support.services import missing
from tests.support.waiting import wait_for_sync


@pytest.fixture(scope="module")
def roles(tmp_path_factory: pytest.TempPathFactory, busybox_image: str) -> Iterator[RoleStack]:
    if not ssh_available():
        missing("openssh-server (sshd) and git-shell, for the forge emulator's SSH")
    stack = RoleStack(tmp_path_factory.mktemp("agola"), (*ALL, "notification"),
                      {"executor": "  docker: {network: none}\n  activeTasksLimit: 2\n"})
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module", params=DIALECTS)
def emulator(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             roles: RoleStack) -> Iterator[ForgeEmulator]:
    emu = ForgeEmulator(tmp_path_factory.mktemp(request.param), dialect=request.param).start()
    try:
        yield emu
    finally:
        emu.stop()


def ok(res: Any) -> Any:
    assert res.exit_code == 0, res.output
    return res


def signed(dialect: str, delivery: Delivery, secret: str, body: bytes) -> dict[str, str]:
    """The headers of ``delivery`` sent again with ``body``, signed (or tokened) with ``secret``."""
    if dialect == "github":
        return {"X-GitHub-Event": delivery.event, "X-GitHub-Delivery": "again-" + delivery.id,
                "X-Hub-Signature-256": github.sign(secret, body)}
    if dialect == "gitlab":
        return {"X-Gitlab-Event": delivery.event, "X-Gitlab-Event-UUID": "again-" + delivery.id, "X-Gitlab-Token": secret}
    return {"X-Gitea-Event": delivery.event, "X-Gitea-Delivery": "again-" + delivery.id,
            "X-Gitea-Signature": gitea.sign(secret, body)}


def elsewhere(dialect: str, body: bytes) -> bytes:
    """A delivery's payload moved to another repository (another id, name and path)."""
    payload = json.loads(body)
    repo = payload["project"] if dialect == "gitlab" else payload["repository"]
    repo.update(id=repo["id"] + 1000, name="elsewhere")
    for key in ("full_name", "path_with_namespace"):
        if key in repo:
            repo[key] = "lena/elsewhere"
    return json.dumps(payload).encode()


PIPELINE = """version: v0
runs:
  - name: build
    tasks:
      - name: check
        runtime: {{type: pod, containers: [{{image: {image}}}]}}
        environment: {{DEPLOY_TOKEN: {{from_variable: deploytoken}}}}
        steps:
          - type: clone
          - type: run
            name: show
            command: cat README; echo "token=[$DEPLOY_TOKEN]"
"""


def test_push_tag_and_fork_pull_request(roles: RoleStack, emulator: ForgeEmulator, busybox_image: str,
                                        tmp_path: Path) -> None:
    kind = emulator.forge.dialect
    name = f"lena-{kind}"
    project_ref = f"user/{name}/site"
    emulator.add_user("lena", "lena-pw")
    emulator.create_repo("lena", "site")
    app = emulator.add_oauth_app(f"{roles.url}/oauth2/callback")
    admin = Session(roles, ADMIN)
    ok(admin.cli("remotesource", "create", "-n", kind, "--type", kind, "--auth-type", "oauth2",
                 "--api-url", emulator.url, "--clientid", app.client_id, "--secret", app.client_secret,
                 "--ssh-host-key", emulator.ssh_host_key))
    ok(admin.cli("user", "create", name))
    lena = Session(roles, ok(admin.cli("user", "token", "create", name, "t")).stdout.strip())

    authorize = ok(lena.cli("user", "linkedaccount", "create", "-n", name, "-r", kind)).output.strip().splitlines()[-1]
    ok(lena.cli("user", "linkedaccount", "complete", follow_authorize(authorize, "lena", "lena-pw")))

    project = json.loads(ok(lena.cli("project", "create", "-n", "site", "--parent", f"user/{name}", "--remote-source",
                                     kind, "--repo-path", "lena/site", "--json")).stdout)
    repo = emulator.repo("lena/site")
    [key] = repo.keys.values()
    assert key.title == f"agola deploy key - {project['id']}" and key.read_only
    [hook] = repo.hooks.values()
    assert hook.url == f"{roles.url}/webhooks?projectid={project['id']}" and hook.secret
    if kind == "github":  # GitHub pinged the new hook: answered, nothing built
        wait_for_sync(lambda: [d.status for d in emulator.deliveries if d.event == "ping"] == [200], timeout=20,
                      message="the ping answered 200")

    secret, values = tmp_path / "secret.yml", tmp_path / "values.yml"
    secret.write_text("token: s3cr3t-deploy-value\n")
    values.write_text("- {secret_name: creds, secret_var: token}\n")
    ok(lena.cli("project", "secret", "create", "--project", project_ref, "-n", "creds", "-f", str(secret)))
    ok(lena.cli("project", "variable", "create", "--project", project_ref, "-n", "deploytoken", "-f", str(values)))
    tree = work_tree(tmp_path / "site", {".agola/config.yml": PIPELINE.format(image=busybox_image),
                                         "README": f"hello from {kind}\n"}, "site v1")
    git("push", "-q", emulator.http_url("lena/site", "lena"), "main", cwd=tree)

    def runs() -> list[dict[str, Any]]:
        return list(json.loads(ok(lena.cli("run", "list", "--project", project_ref, "--json")).stdout))

    def finished(pick: Callable[[dict[str, Any]], bool]) -> Callable[[], dict[str, Any] | None]:
        def check() -> dict[str, Any] | None:
            rows = [r for r in runs() if pick(r)]
            return rows[0] if rows and rows[0]["phase"] in ("finished", "setuperror") else None
        return check

    def logs(run: dict[str, Any], step: int) -> str:
        return str(lena.cli("run", "logs", run["id"], "--project", project_ref, "--task", "check",
                            "--step", str(step)).output)

    run = wait_for_sync(finished(lambda r: r["annotations"].get("branch") == "main"), timeout=120, interval=0.5,
                        message=f"the pushed commit's run finishes ({kind})")
    assert run["result"] == "success", (lena.cli("run", "show", run["id"], "--json").output, logs(run, 1))
    assert f"hello from {kind}" in logs(run, 1) and "token=[]" not in logs(run, 1)  # the variable was given
    assert f"ssh://***@127.0.0.1:{emulator.forge.ssh_port}/lena/site.git" in logs(run, 0)  # over SSH
    sha = git("rev-parse", "HEAD", cwd=tree)
    assert run["annotations"]["commit_sha"] == sha and run["annotations"]["webhook_sender"] == "lena"

    # The notification role set the commit's statuses on the forge: pending, then success.
    def statuses() -> list[str] | None:
        states = [st.state for st in emulator.statuses("lena/site", sha)]
        return states if states and states[-1] == "success" else None

    assert wait_for_sync(statuses, timeout=30, message="commit statuses")[0] == "pending"
    final = emulator.statuses("lena/site", sha)[-1]
    assert run["id"] in final.target_url and "site" in final.context

    # A tag push builds the tagged commit (annotated tag: not the tag object) the same way.
    git("tag", "-a", "v1.0", "-m", "release 1.0", cwd=tree)
    git("push", "-q", emulator.http_url("lena/site", "lena"), "v1.0", cwd=tree)
    tag_run = wait_for_sync(finished(lambda r: r["annotations"].get("tag") == "v1.0"), timeout=120, interval=0.5,
                            message="the tag's run finishes")
    assert tag_run["result"] == "success" and tag_run["annotations"]["commit_sha"] == sha
    assert tag_run["annotations"]["message"] == "Tag v1.0"

    # A pull request from a fork builds the fork's commit, without the project's secrets.
    emulator.add_user("mike", "mike-pw")
    emulator.fork_repo("lena/site", "mike")
    git("checkout", "-q", "-b", "patch", cwd=tree)
    fork_sha = commit(tree, {"README": "patched by a fork\n"}, "fork change")
    git("push", "-q", emulator.http_url("mike/site", "mike"), "patch", cwd=tree)
    emulator.open_pull_request("lena/site", "mike/site", "patch", "Patch from mike")
    pr_run = wait_for_sync(finished(lambda r: r["annotations"].get("ref_type") == "pull_request"), timeout=120,
                           interval=0.5, message="the fork PR's run finishes")
    assert pr_run["result"] == "success", (pr_run, logs(pr_run, 1))
    assert pr_run["annotations"]["commit_sha"] == fork_sha
    assert "patched by a fork" in logs(pr_run, 1) and "token=[]" in logs(pr_run, 1)
    assert len(runs()) == 3

    # A forged delivery (guessed secret), and a well signed one for another repository, create nothing.
    push = next(d for d in emulator.deliveries if d.hook_url == hook.url and b"refs/heads/main" in d.body)
    assert post(hook.url, push.body, signed(kind, push, "guessed-secret", push.body)) == 401
    other = elsewhere(kind, push.body)
    code = post(hook.url, other, signed(kind, push, hook.secret, other))
    assert 400 <= code < 500 and code != 401, code
    assert len(runs()) == 3

    # The forge's SSH host key is checked: with another key pinned, the clone is refused.
    other_key = emulator.ssh_host_key.rsplit(" ", 1)[0] + " AAAAC3NzaC1lZDI1NTE5AAAAIOtherHostKeyOtherHostKeyOtherHostKey0"
    ok(admin.cli("remotesource", "update", "--ref", kind, "--ssh-host-key", other_key))
    ok(lena.cli("run", "create", "--project", project_ref, "--branch", "main"))

    def manual_finished() -> dict[str, Any] | None:
        rows = runs()
        return rows[0] if len(rows) == 4 and rows[0]["phase"] == "finished" else None

    refused = wait_for_sync(manual_finished, timeout=120, interval=0.5, message="the manual run finishes")
    assert refused["result"] == "failed" and "Host key verification failed" in logs(refused, 0), logs(refused, 0)


def test_hooks_are_each_forges_own(emulator: ForgeEmulator) -> None:
    """What the previous scenario's hook looks like on each forge (ran after it, same emulator)."""
    [hook] = emulator.repo("lena/site").hooks.values()
    assert isinstance(hook, Hook)
    expected = {"gitea": "pull_request_sync", "github": "pull_request", "gitlab": "Merge Request Hook"}
    assert expected[emulator.forge.dialect] in hook.events
    kinds = {d.event for d in emulator.deliveries if d.hook_url == hook.url}
    assert kinds == {"gitea": {"push", "pull_request"}, "github": {"ping", "push", "pull_request"},
                     "gitlab": {"Push Hook", "Tag Push Hook", "Merge Request Hook"}}[emulator.forge.dialect]
