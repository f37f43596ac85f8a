"""The host-driver and idle benchmarks, against Buildbot measured in the same run.

* P1b: submit -> finished of a one-task ``echo`` pipeline on the **host** driver, vs a trivial
  Buildbot build (a force scheduler, one ``ShellCommand(echo hello)`` on a local worker) from the
  force call to the buildset complete. Target <= 0.5x.
* P4: ``agola serve --components all``: seconds until every role answers ``/health``, and the
  idle RSS of the process tree after a few seconds; vs Buildbot master + worker (master ready = its
  REST API answers, RSS of both trees). Targets: RSS < 100 MB, ready < 1.5 s.

Buildbot (``buildbot``, ``buildbot-worker``, ``buildbot-www``) is installed by pip into its own
virtualenv under ``$AGOLA_BENCH_CACHE`` (default ``~/.cache/agola-bench``) on first use. If that
fails (no package index), the rows are printed without a baseline, with the reason.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.common import BenchRow
from bench.e2e import ECHO, Repo, Server, breakdown, free_port, pipeline, timed, tree_rss_mb, wait_finished

CACHE = Path(os.environ.get("AGOLA_BENCH_CACHE", "~/.cache/agola-bench")).expanduser()
VENV = CACHE / "buildbot-venv"
PACKAGES = ("buildbot", "buildbot-worker", "buildbot-www")
IDLE_SECONDS = 5.0

MASTER_CFG = """\
from buildbot.plugins import schedulers, steps, util, worker
c = BuildmasterConfig = {{}}
c["workers"] = [worker.Worker("w1", "pass")]
c["protocols"] = {{"pb": {{"port": "tcp:{pb}:interface=127.0.0.1"}}}}
c["schedulers"] = [schedulers.ForceScheduler(name="force", builderNames=["echo"])]
f = util.BuildFactory()
f.addStep(steps.ShellCommand(command=["echo", "hello"]))
c["builders"] = [util.BuilderConfig(name="echo", workernames=["w1"], factory=f)]
c["www"] = {{"port": "tcp:{www}:interface=127.0.0.1", "plugins": {{}}}}
c["db"] = {{"db_url": "sqlite:///state.sqlite"}}
c["buildbotURL"] = "http://127.0.0.1:{www}/"
c["title"] = "agola bench"
c["buildbotNetUsageData"] = None
"""


def ensure_buildbot() -> str:
    """Install Buildbot into its venv if needed; "" when usable, else why not."""
    if (VENV / "bin" / "buildbot").exists() and (VENV / "bin" / "buildbot-worker").exists():
        return ""
    try:
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True, timeout=300)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", *PACKAGES], check=True, capture_output=True,
                       timeout=900)
    except subprocess.CalledProcessError as exc:
        last = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-1:] or ["?"]
        return f"pip install {' '.join(PACKAGES)} failed: {last[0][:120]}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot install Buildbot: {exc}"
    return ""


class Buildbot:
    """A master and a local worker, each a ``--nodaemon`` child process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pb, self.www = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.www}/api/v2"
        self.master: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None

    def create(self) -> None:
        bin_ = VENV / "bin"
        self.root.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(bin_ / "buildbot"), "create-master", "-r", "master"], cwd=self.root, check=True,
                       capture_output=True, timeout=120)
        (self.root / "master" / "master.cfg").write_text(MASTER_CFG.format(pb=self.pb, www=self.www))
        subprocess.run([str(bin_ / "buildbot-worker"), "create-worker", "-r", "worker", f"127.0.0.1:{self.pb}", "w1",
                        "pass"], cwd=self.root, check=True, capture_output=True, timeout=120)

    async def start(self) -> float:
        """Start master and worker; seconds until the master's REST API answers."""
        bin_ = VENV / "bin"
        log = open(self.root / "processes.log", "ab")
        t0 = time.perf_counter()
        self.master = subprocess.Popen([str(bin_ / "buildbot"), "start", "--nodaemon", "master"], cwd=self.root,
                                       stdout=log, stderr=log)
        self.worker = subprocess.Popen([str(bin_ / "buildbot-worker"), "start", "--nodaemon", "worker"],
                                       cwd=self.root, stdout=log, stderr=log)
        ready = await self._poll(lambda body: "builders" in body and len(body["builders"]) == 1, "/builders")
        ready_s = ready - t0
        await self._poll(lambda body: any(w["connected_to"] for w in body.get("workers", [])), "/workers")
        return ready_s

    async def _poll(self, ok, path: str, timeout: float = 120) -> float:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.master and self.master.poll() is not None:
                    raise RuntimeError(f"buildbot master exited; see {self.root / 'master' / 'twistd.log'}")
                try:
                    async with session.get(self.url + path, timeout=aiohttp.ClientTimeout(total=2)) as r:
                        if r.status == 200 and ok(await r.json(content_type=None)):
                            return time.perf_counter()
                except (TimeoutError, aiohttp.ClientError, ValueError):
                    pass
                await asyncio.sleep(0.01)
        raise TimeoutError(f"buildbot {path} not ready in {timeout} s")

    async def build(self, session: aiohttp.ClientSession) -> None:
        """Force one build and wait until its buildset is complete (polled every 20 ms)."""
        body = {"jsonrpc": "2.0", "method": "force", "id": 1, "params": {"builderid": "1"}}
        async with session.post(f"{self.url}/forceschedulers/force", json=body) as r:
            bsid = (await r.json(content_type=None))["result"][0]
        while True:
            async with session.get(f"{self.url}/buildsets/{bsid}") as r:
                [bs] = (await r.json(content_type=None))["buildsets"]
            if bs["complete"]:
                if bs["results"] != 0:
                    raise RuntimeError(f"buildbot build failed: results={bs['results']}")
                return
            await asyncio.sleep(0.02)

    def rss_mb(self) -> float:
        return sum(tree_rss_mb(p.pid) for p in (self.master, self.worker) if p is not None)

    def stop(self) -> None:
        for p in (self.worker, self.master):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


async def _agola_idle(tmp: Path, n: int) -> tuple[float, float]:
    """Median ready seconds over n starts, and the idle RSS of the last one."""
    readies, rss = [], 0.0
    for i in range(n):
        server = Server(tmp / f"p4-{i}", driver="host")
        try:
            readies.append(await server.start())
            await asyncio.sleep(IDLE_SECONDS)
            rss = server.rss_mb()
        finally:
            server.stop()
    return statistics.median(readies), rss


async def run(quick: bool = False) -> list[BenchRow]:
    n = 3 if quick else 10
    tmp = Path(tempfile.mkdtemp(prefix="agola-bench-host-"))
    reason = await asyncio.to_thread(ensure_buildbot)
    bb: Buildbot | None = None
    bb_ready = bb_rss = None
    try:
        server = Server(tmp / "server", driver="host")
        if not reason:
            bb = Buildbot(tmp / "buildbot")
            await asyncio.to_thread(bb.create)
            bb_ready = await bb.start()
            await asyncio.sleep(IDLE_SECONDS)
            bb_rss = bb.rss_mb()
        try:
            await server.start()
            await server.bootstrap()
            repo = Repo(server, tmp / "p1b", pipeline({"echo": [ECHO]}))
            await asyncio.to_thread(repo.push)
            async with server.client() as gw, aiohttp.ClientSession() as session:
                await wait_finished(gw, await repo.create_run(gw))

                last: list[object] = []

                async def ours() -> None:
                    submitted = time.time()
                    await asyncio.to_thread(repo.push)
                    run_id = await repo.create_run(gw)
                    await wait_finished(gw, run_id)
                    last[:] = [run_id, submitted, time.time()]

                t_ours, t_base = [], []
                if bb is not None:
                    await bb.build(session)  # warm-up
                for _ in range(n):
                    t_ours.append(await timed(ours))
                    if bb is not None:
                        t_base.append(await timed(lambda: bb.build(session)))  # type: ignore[union-attr]
                detail = await breakdown(gw, *last)  # type: ignore[arg-type]
        finally:
            server.stop()
        if bb is not None:
            bb.stop()
            bb = None
        ready, rss = await _agola_idle(tmp, 3 if quick else 5)
    finally:
        if bb is not None:
            bb.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    o = statistics.median(t_ours)
    b = statistics.median(t_base) if t_base else None
    note = f"median of {n}; last run (s): {detail}" + (f"; no baseline: {reason}" if reason else "")
    return [
        BenchRow("P1b", "one-task echo pipeline, submit -> finished, host driver, vs a trivial Buildbot build",
                 o, b, "s", "<= 0.5x baseline", None if b is None else o <= 0.5 * b, note),
        BenchRow("P4-ready", "serve --components all: start -> every role answers /health, vs Buildbot master REST up",
                 ready, bb_ready, "s", "< 1.5 s", ready < 1.5, reason or "median of starts; baseline: one start"),
        BenchRow("P4-rss", f"serve --components all idle RSS ({IDLE_SECONDS:.0f} s after ready), vs Buildbot master + worker",
                 rss, bb_rss, "MB", "< 100 MB", rss < 100, reason or "process trees, VmRSS"),
    ]
