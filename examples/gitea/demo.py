"""agola with a forge, on this machine only: ``python3 examples/gitea/demo.py``.

It starts the test suite's Gitea emulator (Gitea's API, OAuth2, git over HTTP and a real sshd on
loopback ports) and every agola role in this process (docker executor, notification role), then
does through the CLI what a team does with a real Gitea: the admin adds the remote source, a user
links their account and creates a project on their repository, `git push` of
[`examples/hello`](../hello) starts the run (cloned over SSH with the project's deploy key), and
the commit gets its statuses. Each command is printed with its output; exit status 0 when the run
succeeds. Needs Docker, git, openssh-server and Debian's busybox-static (run from a clone, as
root: sshd needs its privilege separation directory). Nothing outlives the script.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from click.testing import CliRunner  # noqa: E402

from agola.cli.main import agola  # noqa: E402
from agola.util.busyboximage import ensure_image  # noqa: E402
from tests.client.stack import ADMIN, ALL, RoleStack  # noqa: E402
from tests.support.forge import GiteaEmulator  # noqa: E402
from tests.support.waiting import wait_for_sync  # noqa: E402

IMAGE = "agola-test/busybox:latest"


def main() -> int:
    ensure_image(IMAGE)
    with tempfile.TemporaryDirectory(prefix="agola-gitea-demo-") as tmp:
        work = Path(tmp)
        gitea = GiteaEmulator(work / "gitea").start()
        stack = RoleStack(work / "agola", (*ALL, "notification"),
                          {"executor": "  docker: {network: none}\n  activeTasksLimit: 2\n"})
        stack.start()
        try:
            return _demo(stack, gitea, work)
        finally:
            stack.stop()
            gitea.stop()


def _agola(stack: RoleStack, token: str, *args: str, shown: str = "") -> str:
    res = CliRunner().invoke(agola, ["--gateway-url", stack.url, "--token", token, *args])
    print(f"$ agola {shown or ' '.join(args)}\n{res.output}", end="" if res.output.endswith("\n") else "\n")
    if res.exit_code != 0:
        raise SystemExit(f"the command failed (exit {res.exit_code})")
    return res.output


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _demo(stack: RoleStack, gitea: GiteaEmulator, work: Path) -> int:
    gitea.add_user("alice", "alice-pw")
    gitea.create_repo("alice", "hello")
    print(f"# Gitea (emulated) at {gitea.url}, agola at {stack.url}\n")
    _agola(stack, ADMIN, "remotesource", "create", "-n", "gitea", "--type", "gitea", "--auth-type", "password",
           "--api-url", gitea.url, "--ssh-host-key", gitea.ssh_host_key,
           shown=f"remotesource create -n gitea --type gitea --auth-type password --api-url {gitea.url} "
                 "--ssh-host-key '<the forge's ssh host key>'")
    _agola(stack, ADMIN, "user", "create", "alice")
    token = _agola(stack, ADMIN, "user", "token", "create", "alice", "laptop").strip()
    _agola(stack, token, "user", "linkedaccount", "create", "-n", "alice", "-r", "gitea", "--remote-name", "alice",
           "--remote-password", "alice-pw",
           shown="user linkedaccount create -n alice -r gitea --remote-name alice --remote-password '...'")
    _agola(stack, token, "user", "remoterepos", "-r", "gitea")
    _agola(stack, token, "project", "create", "-n", "hello", "--parent", "user/alice", "--remote-source", "gitea",
           "--repo-path", "alice/hello")
    repo = gitea.repo("alice/hello")
    print(f"# on the forge: deploy key {[k.title for k in repo.keys.values()]}, "
          f"webhook {[h.url for h in repo.hooks.values()]}\n")

    tree = work / "hello"
    shutil.copytree(ROOT / "examples" / "hello", tree)
    conf = tree / ".agola" / "config.yml"
    conf.write_text(conf.read_text().replace("image: busybox", f"image: {IMAGE}"))
    _git("init", "-q", "-b", "main", cwd=tree)
    _git("-c", "user.name=Alice", "-c", "user.email=alice@example.com", "add", "-A", cwd=tree)
    _git("-c", "user.name=Alice", "-c", "user.email=alice@example.com", "commit", "-q", "-m", "hello", cwd=tree)
    print("$ git push origin main")
    _git("push", "-q", gitea.http_url("alice/hello", "alice"), "main", cwd=tree)

    def finished() -> dict[str, str] | None:
        res = CliRunner().invoke(agola, ["--gateway-url", stack.url, "--token", token, "run", "list", "--project",
                                         "user/alice/hello", "--json"])
        rows = json.loads(res.stdout) if res.exit_code == 0 else []
        return rows[0] if rows and rows[0]["phase"] in ("finished", "setuperror") else None

    run = wait_for_sync(finished, timeout=300, interval=0.5, message="the pushed commit's run finishes")
    _agola(stack, token, "run", "list", "--project", "user/alice/hello")
    _agola(stack, token, "run", "logs", run["id"], "--project", "user/alice/hello", "--task", "package")
    sha = run["annotations"]["commit_sha"]

    def final_status() -> bool:
        states = gitea.statuses("alice/hello", sha)
        return bool(states) and states[-1].state != "pending"

    wait_for_sync(final_status, timeout=60, message="the commit's final status")
    print(f"# commit {sha[:10]} on the forge:")
    for status in gitea.statuses("alice/hello", sha):
        print(f"#   {status.state:8} {status.context}  {status.description}  {status.target_url}")
    print(f"\nresult: {run['result']}")
    return 0 if run["result"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
