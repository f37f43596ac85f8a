"""Forge webhooks -> runs (issue 13), against the Gitea emulator of the tests.

W2: one `git push` of 100 new branches to a project's repository: the emulator sends the 100
signed deliveries at once (as Gitea's queue does); measured from the push to the last delivery
answered, every answer 2xx with its run created: from the first delivery sent to the last one
answered (the emulator's own work computing the push's payloads is not counted). Control plane only (runservice, configstore,
gateway, gitserver in one process, embedded storage): the runs stay queued, what is measured is
run creation (signature, pipeline file read through the forge API, run written).

W1 (push -> first step running, vs a direct run) is not measured yet.
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
    return await asyncio.to_thread(_run, 30 if quick else 100)


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
