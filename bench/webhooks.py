"""Forge webhooks -> runs (issue 13), against the Gitea emulator of the tests.

W2: one `git push` of 100 new branches to a project's repository: the emulator sends the 100
signed deliveries at once (as Gitea's queue does); measured from the push to the last delivery
answered, every answer 2xx with its run created: from the first delivery sent to the last one
answered (the emulator's own work computing the push's payloads is not counted). Control plane only (runservice, configstore,
gateway, gitserver in one process, embedded storage): the runs stay queued, what is measured is
run creation (signature, pipeline file read through the forge API, run written).

W1: push -> the run's first step started, for a one-task pipeline (clone, then echo), docker
driver, in a real ``agola serve --components all`` process (``bench/e2e.Server``): a ``git push``
to the emulator (webhook, pipeline read through the forge API, clone over SSH with the deploy key)
vs the same commit as a direct run (push to the gateway + createrun, clone over HTTP from the
gitserver). Median of n, after one warm-up each; the step's start time is the executor's.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path

from bench.common import BenchRow
from tests.client.stack import ADMIN, RoleStack
from tests.forges.conftest import cli, git, new_user, work_tree
from tests.forges.test_webhooks import PIPELINE
from tests.support.forge import GiteaEmulator
from tests.support.waiting import wait_for_sync


async def run(quick: bool = False) -> list[BenchRow]:
    # The CLI runs its own event loop: the whole scenario runs in a thread.
    rows = await asyncio.to_thread(_run, 30 if quick else 100)
    rows.append(await w1_latency(2 if quick else 5))
    return rows


def _run(branches: int) -> list[BenchRow]:
    with tempfile.TemporaryDirectory(prefix="agola-bench-webhooks-") as tmp:
        work = Path(tmp)
        emulator = GiteaEmulator(work / "gitea", ssh=False).start()
        stack = RoleStack(work / "agola")
        stack.start()
        try:
            return [_w2(stack, emulator, work, branches)]
        finally:
            stack.stop()
            emulator.stop()


def _w2(stack: RoleStack, emulator: GiteaEmulator, work: Path, branches: int) -> BenchRow:
    emulator.add_user("bench", "bench-pw")
    emulator.create_repo("bench", "app")
    assert cli(stack, ADMIN, "remotesource", "create", "-n", "gitea", "--type", "gitea", "--auth-type", "password",
               "--api-url", emulator.url).exit_code == 0
    token = new_user(stack, "bench")
    assert cli(stack, token, "user", "linkedaccount", "create", "-n", "bench", "-r", "gitea", "--remote-name", "bench",
               "--remote-password", "bench-pw").exit_code == 0
    assert cli(stack, token, "project", "create", "-n", "app", "--parent", "user/bench", "--remote-source", "gitea",
               "--repo-path", "bench/app").exit_code == 0
    tree = work_tree(work / "tree", {".agola/config.yml": PIPELINE}, "bench")
    refspecs = [f"HEAD:refs/heads/b{i:03d}" for i in range(branches)]
    t0 = time.monotonic()
    git("push", "-q", emulator.http_url("bench/app", "bench"), *refspecs, cwd=tree)

    def answered() -> bool:
        ds = [d for d in emulator.deliveries if d.event == "push"]
        return len(ds) == branches and all(d.status for d in ds)

    wait_for_sync(answered, timeout=300, interval=0.01, message="every delivery answered")
    push_to_answered = time.monotonic() - t0
    deliveries = [d for d in emulator.deliveries if d.event == "push"]
    elapsed = max(d.answered_at for d in deliveries) - min(d.sent_at for d in deliveries)
    refused = [d for d in deliveries if d.status != 200]
    created = {json.loads(d.response)["runs"][0]["id"] for d in deliveries if d.status == 200}
    met = not refused and len(created) == branches and elapsed <= 5.0
    note = f"{len(created)}/{branches} runs created, {len(refused)} refused; push -> all answered {push_to_answered:.2f}s"
    return BenchRow("W2", f"{branches} webhook deliveries at once -> all runs created", elapsed, None, "s",
                    "no refusal, <= 5 s", met, note)


# ---------------------------------------------------------------------------------------- W1


async def w1_latency(n: int) -> BenchRow:
    import shutil
    import statistics
    from datetime import datetime

    from agola.client import CreateProjectRequest, CreateRemoteSourceRequest, CreateUserLARequest, GatewayClient
    from agola.util.busyboximage import ensure_image
    from bench.e2e import IMAGE, Repo, Server
    from tests.forges.conftest import commit

    if shutil.which("docker") is None:
        return BenchRow("W1", "needs a Docker engine", 0.0, None, "-", "-", None, "skipped: no Docker engine")
    await asyncio.to_thread(ensure_image, IMAGE)
    pipe = ("version: v0\nruns:\n  - name: bench\n    tasks:\n      - name: t\n"
            f"        runtime: {{containers: [{{image: {IMAGE}}}]}}\n"
            "        steps: [{type: clone}, {run: echo hello}]\n")

    with tempfile.TemporaryDirectory(prefix="agola-bench-w1-") as tmp:
        work = Path(tmp)
        emulator = GiteaEmulator(work / "gitea").start()
        server = Server(work / "server", limit=2)
        try:
            await server.start()
            await server.bootstrap()
            emulator.add_user("bench", "bench-pw")
            emulator.create_repo("bench", "app")
            async with GatewayClient(server.url, "bench-admin-token-0123456789abcdefghij") as admin:
                await admin.create_remote_source(CreateRemoteSourceRequest(
                    "gitea", "gitea", "password", apiurl=emulator.url, ssh_host_key=emulator.ssh_host_key))
            async with server.client() as gw:
                await gw.create_user_linked_account("bench", CreateUserLARequest("gitea", "bench", "bench-pw"))
                project = await gw.create_project(CreateProjectRequest("app", "user/bench", "bench/app", "gitea"))
                tree = await asyncio.to_thread(work_tree, work / "tree", {".agola/config.yml": pipe}, "w1")
                direct = Repo(server, work / "direct", pipe)

                async def step_start(run_id: str) -> tuple[float, float]:
                    """When the first step (the clone) started, and when it ended."""
                    from bench.e2e import wait_finished

                    await wait_finished(gw, run_id)
                    run = await gw.get_run(run_id)
                    [task] = run.tasks.values()
                    t = await gw.get_task(run_id, task.id)
                    clone = t.steps[0]
                    return (datetime.fromisoformat(str(clone.start_time)).timestamp(),
                            datetime.fromisoformat(str(clone.end_time)).timestamp())

                seen: set[str] = set()

                async def webhook_once(i: int) -> tuple[float, float]:
                    await asyncio.to_thread(commit, tree, {"n": str(i)}, f"change {i}")
                    t0 = time.time()
                    await asyncio.to_thread(git, "push", "-q", emulator.http_url("bench/app", "bench"), "main", cwd=tree)
                    while True:
                        rows = [r for r in await gw.list_runs(f"/project/{project.id}", limit=5) if r.id not in seen]
                        if rows:
                            seen.add(rows[0].id)
                            start, end = await step_start(rows[0].id)
                            return start - t0, end - t0
                        await asyncio.sleep(0.01)

                async def direct_once(i: int) -> tuple[float, float]:
                    (direct.path / "n").write_text(str(i))
                    t0 = time.time()
                    await asyncio.to_thread(direct.push)
                    start, end = await step_start(await direct.create_run(gw))
                    return start - t0, end - t0

                await webhook_once(-1)
                await direct_once(-1)
                ours: list[tuple[float, float]] = []
                base: list[tuple[float, float]] = []
                for i in range(n):
                    ours.append(await webhook_once(i))
                    base.append(await direct_once(i))
        finally:
            server.stop()
            emulator.stop()
    o, b = statistics.median(s for s, _ in ours), statistics.median(s for s, _ in base)
    # The clone step itself (SSH from the forge's sshd vs HTTP from the gitserver) is after the
    # measured point; what it adds is said beside.
    oe, be = statistics.median(e for _, e in ours), statistics.median(e for _, e in base)
    return BenchRow("W1", "push -> first step started: Gitea webhook (clone over SSH) vs direct run",
                    o, b, "s", "<= 1.2x baseline", o <= 1.2 * b,
                    f"median of {n}; push -> clone step ended {oe:.3f} s vs {be:.3f} s")
