"""End-to-end benchmarks: a real ``agola serve --components all`` process (embedded storage, free
ports, a temporary data dir), pipelines submitted as direct runs, against the same work done by
bare Docker commands measured in the same run, interleaved so that load changes hit both sides.

* P1: submit (push + createrun) -> run finished, a one-task ``echo`` pipeline, docker driver,
  vs ``docker run --rm`` of the same image and command.
* P2: 100 runs x 3 tasks, executor ``activeTasksLimit`` 8, vs the same 300 containers through
  ``xargs -P8 docker run --rm``.
* P3: a step printing 100 MB, followed live by ``agola run logs -f`` (a CLI process), vs the same
  container with its output sent to /dev/null; and the server's RSS growth meanwhile. Also against
  ``docker run -t`` (the step has a tty by default), and the same step with ``tty: false``.
* L1: the delay from a step printing a line (a timestamp every 200 ms) to a live follower seeing
  it: ``agola run logs -f`` and the gateway's ``/logs?follow`` stream the web UI relays.
* P7: save_to_workspace + restore_workspace of a 1 GB tree vs ``tar c`` + ``tar x`` of the same
  tree in the same container.

The host-driver and idle rows (P1b, P4, against Buildbot) are in ``bench/host.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from agola.client import GatewayClient, UserCreateRunRequest
from bench.common import BenchRow

IMAGE = "agola-test/busybox:latest"
ADMIN = "bench-admin-token-0123456789abcdefghij"
ROLES_WITH_WEB = ("runservice", "executor", "configstore", "gateway", "gitserver", "notification")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and its descendants, in MB (from /proc)."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return total / 1024


class Server:
    """``agola serve --components all`` as a child process, on free ports and a temp data dir."""

    def __init__(self, root: Path, *, driver: str = "docker", limit: int = 2, runs_per_group: int = 1) -> None:
        self.root = root
        self.ports = {role: free_port() for role in ROLES_WITH_WEB}
        self.url = f"http://127.0.0.1:{self.ports['gateway']}"
        executor = f"  activeTasksLimit: {limit}\n"
        executor += "  driver: {type: host}\n" if driver == "host" else "  docker: {network: none}\n"
        text = f"dataDir: {root / 'data'}\n"
        # Direct runs of one repository and branch form one run group, which the scheduler runs one
        # at a time by default (FIFO, as the reference); throughput benchmarks lift that limit.
        text += f"scheduler:\n  runsPerGroupLimit: {runs_per_group}\n"
        for role in ROLES_WITH_WEB:
            text += f"{role}:\n  web: {{listenAddress: '127.0.0.1:{self.ports[role]}'}}\n"
            text += {"gateway": f"  adminToken: {ADMIN}\n", "executor": executor}.get(role, "")
        root.mkdir(parents=True, exist_ok=True)
        (root / "config.yml").write_text(text)
        self.proc: subprocess.Popen[bytes] | None = None
        self.token = ""
        self.user_id = ""

    async def start(self) -> float:
        """Start the process; seconds until every role answers /health."""
        import aiohttp

        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agola.cli.main", "serve", "--components", "all", "--config", str(self.root / "config.yml")],
            stdout=subprocess.DEVNULL, stderr=open(self.root / "server.log", "wb"),
        )
        pending = set(self.ports.values())
        async with aiohttp.ClientSession() as session:
            while pending:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"agola serve exited; see {self.root / 'server.log'}")
                for port in list(pending):
                    try:
                        async with session.get(f"http://127.0.0.1:{port}/health", timeout=aiohttp.ClientTimeout(total=1)) as r:
                            if r.status == 200:
                                pending.discard(port)
                    except (TimeoutError, aiohttp.ClientError):
                        pass
                if pending:
                    await asyncio.sleep(0.01)
                if time.perf_counter() - t0 > 60:
                    raise RuntimeError("agola serve not ready within 60 s")
        return time.perf_counter() - t0

    def rss_mb(self) -> float:
        return tree_rss_mb(self.proc.pid) if self.proc else 0.0

    async def bootstrap(self) -> None:
        async with GatewayClient(self.url, ADMIN) as gw:
            user = await gw.create_user("bench")
            self.user_id = user.id
            self.token = await gw.create_user_token("bench", "t")

    def client(self) -> GatewayClient:
        return GatewayClient(self.url, self.token)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Repo:
    """A work tree whose pipeline is pushed once; each ``submit`` is one direct run of it."""

    def __init__(self, server: Server, path: Path, pipeline: str) -> None:
        from agola.cli import _git

        self.server = server
        path.mkdir(parents=True)
        subprocess.run(["git", "init", "-q", str(path)], check=True)
        (path / ".agola").mkdir()
        (path / ".agola" / "config.yml").write_text(pipeline)
        self.uuid = _git.repo_uuid(str(path))
        self.path = path
        self.commit = ""

    def push(self) -> None:
        from agola.cli import _git

        snap = _git.save_snapshot(str(self.path), untracked=True, ignored=False)
        url = _git.repo_push_url(self.server.url, self.server.user_id, self.uuid)
        _git.push_snapshot(str(self.path), snap.commit_sha, url, "refs/heads/master", self.server.token,
                           maybe_pushed=snap.reused)
        self.commit = snap.commit_sha

    async def create_run(self, gw: GatewayClient) -> str:
        req = UserCreateRunRequest(
            repo_uuid=self.uuid, repo_path=f"{self.server.user_id}/{self.uuid}", commit_sha=self.commit,
            branch="master",
        )
        res = await gw.user_create_run(req)
        if not res.run_ids:
            raise RuntimeError("createrun returned no run id")
        return str(res.run_ids[0])


async def wait_finished(gw: GatewayClient, run_id: str, poll: float = 0.02, timeout: float = 1800) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = await gw.get_run(run_id)
        if run.phase == "finished":
            if run.result != "success":
                raise RuntimeError(f"bench run {run_id} ended {run.result}")
            return run
        await asyncio.sleep(poll)
    raise TimeoutError(f"run {run_id} not finished after {timeout} s")


async def docker(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "docker", *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    if await proc.wait() != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])}... failed")


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    t0 = time.perf_counter()
    await fn()
    return time.perf_counter() - t0


def pipeline(tasks: dict[str, list[str]], image: str = IMAGE) -> str:
    """A pipeline of independent tasks, each a list of step lines (already YAML)."""
    text = "version: v0\nruns:\n  - name: bench\n    tasks:\n"
    for name, steps in tasks.items():
        text += f"      - name: {name}\n        runtime: {{containers: [{{image: {image}}}]}}\n        steps:\n"
        text += "".join(f"          - {s}\n" for s in steps)
    return text


ECHO = "{run: echo hello}"


# ---------------------------------------------------------------------------------------- P1

def _ts(value: str | None) -> float:
    return datetime.fromisoformat(value).timestamp() if value else float("nan")


async def breakdown(gw: GatewayClient, run_id: str, submitted: float, observed: float) -> str:
    """Where the time of one run went (wall clock of this machine, from the run's timestamps)."""
    run = await gw.get_run(run_id)
    [task] = run.tasks.values()
    t = await gw.get_task(run_id, task.id)
    setup = t.setup_step
    marks = [
        ("submit->queued", submitted, _ts(run.enqueue_time)),
        ("queued->run start", _ts(run.enqueue_time), _ts(run.start_time)),
        ("run start->task start", _ts(run.start_time), _ts(t.start_time)),
        ("pod setup", _ts(setup.start_time) if setup else float("nan"), _ts(setup.end_time) if setup else float("nan")),
        ("steps", _ts(t.steps[0].start_time), _ts(t.steps[-1].end_time)),
        ("task end->run end", _ts(t.end_time), _ts(run.end_time)),
        ("run end->seen", _ts(run.end_time), observed),
    ]
    return ", ".join(f"{name} {b - a:.2f}" for name, a, b in marks)

async def p1_latency(server: Server, tmp: Path, n: int) -> list[BenchRow]:
    """P1: submit -> finished of an unchanged work tree (the snapshot's commit is reused and the
    gitserver already has it: no pack is pushed), and P1-edit: the same with a file of the work
    tree changed before each submit (a new snapshot commit and a real ``git push``), both
    interleaved with ``docker run --rm``. The end is seen as ``directrun start --follow`` and the
    web UI see it: on the run events stream (not by polling the run)."""
    repo = Repo(server, tmp / "p1", pipeline({"echo": [ECHO]}))
    await asyncio.to_thread(repo.push)
    async with server.client() as gw:
        finished = FinishedRuns(gw)
        try:
            return await _p1_rounds(gw, repo, finished, n)
        finally:
            await finished.close()


async def _p1_rounds(gw: GatewayClient, repo: Repo, finished: FinishedRuns, n: int) -> list[BenchRow]:
    """P1's rounds, the run events stream open (``finished``)."""
    await finished.wait([await repo.create_run(gw)])  # warm-up: first pod, first archive dirs

    last: dict[bool, list[Any]] = {False: [], True: []}
    edits = iter(range(1_000_000))

    async def ours(edit: bool) -> None:
        if edit:
            (repo.path / "edited.txt").write_text(f"edit {next(edits)}\n")
        submitted = time.time()
        await asyncio.to_thread(repo.push)  # what `directrun start` does: snapshot, push, then createrun
        run_id = await repo.create_run(gw)
        await finished.wait([run_id])
        last[edit][:] = [run_id, submitted, time.time()]

    async def bare() -> None:
        await docker("run", "--rm", "--network", "none", IMAGE, "echo", "hello")

    await bare()
    t_same: list[float] = []
    t_edit: list[float] = []
    t_base: list[float] = []
    for _ in range(n):
        t_same.append(await timed(lambda: ours(False)))
        t_base.append(await timed(bare))
        t_edit.append(await timed(lambda: ours(True)))
    detail = {edit: await breakdown(gw, *last[edit]) for edit in (False, True)}
    b = statistics.median(t_base)
    rows = []
    for edit, times in ((False, t_same), (True, t_edit)):
        o = statistics.median(times)
        rows.append(BenchRow(
            "P1-edit" if edit else "P1",
            ("the same with a file changed before each submit (new snapshot commit, real git push)" if edit
             else "one-task echo pipeline, submit (snapshot+push+createrun) -> finished, docker driver, vs docker run --rm"),
            o, b, "s", "<= 1.3x baseline", o <= 1.3 * b, f"median of {n}; last run (s): {detail[edit]}"))
    return rows


# ---------------------------------------------------------------------------------------- P2

class FinishedRuns:
    """Runs seen finished on the gateway's run events stream (what a web UI listens to), so that
    waiting for many runs costs the server one stream, not a ``GET /runs/{id}`` every 100 ms:
    such polling took ~10 % of the serve process's CPU in P2 (each poll is three requests: the
    gateway, its token check by the configstore, the runservice)."""

    def __init__(self, gw: GatewayClient) -> None:
        self.gw = gw
        self.results: dict[str, str] = {}
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        async for event in self.gw.run_events():
            if event.phase == "finished":
                self.results[event.run_id] = event.result
                self.changed.set()

    async def wait(self, run_ids: list[str], timeout: float = 1800, check: float = 5.0) -> None:
        """Until every run finished (each ``success``); every ``check`` seconds without news the
        runs not seen yet are read once (an event missed by a reconnection is not waited for)."""
        deadline = time.monotonic() + timeout
        while missing := [r for r in run_ids if r not in self.results]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(missing)} runs not finished after {timeout} s")
            self.changed.clear()
            try:
                async with asyncio.timeout(check):
                    await self.changed.wait()
            except TimeoutError:
                for run_id in missing:
                    run = await self.gw.get_run(run_id)
                    if run.phase == "finished":
                        self.results[run_id] = run.result
        failed = [r for r in run_ids if self.results[r] != "success"]
        if failed:
            raise RuntimeError(f"bench runs {', '.join(failed)} did not succeed")

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def p2_throughput(tmp: Path, runs: int) -> BenchRow:
    server = Server(tmp / "p2-server", limit=8, runs_per_group=runs)
    try:
        await server.start()
        await server.bootstrap()
        repo = Repo(server, tmp / "p2", pipeline({f"t{i}": [ECHO] for i in range(3)}))
        await asyncio.to_thread(repo.push)
        async with server.client() as gw:
            finished = FinishedRuns(gw)
            # The warm-up run also proves that the events stream is connected.
            await finished.wait([await repo.create_run(gw)])

            async def ours() -> None:
                ids = [await repo.create_run(gw) for _ in range(runs)]
                await finished.wait(ids)

            async def bare() -> None:
                cmd = (f"seq {runs * 3} | xargs -P8 -I{{}} docker run --rm --network none {IMAGE} echo hello >/dev/null")
                proc = await asyncio.create_subprocess_shell(cmd)
                if await proc.wait() != 0:
                    raise RuntimeError("xargs docker run failed")

            t_base = await timed(bare)
            t_ours = await timed(ours)
            await finished.close()
    finally:
        server.stop()
    return BenchRow("P2", f"{runs} runs x 3 tasks, executor limit 8 (runsPerGroupLimit {runs}), "
                          f"vs {runs * 3} x docker run --rm via xargs -P8",
                    t_ours, t_base, "s", "<= 1.2x baseline", t_ours <= 1.2 * t_base,
                    f"{runs * 3 / t_ours:.1f} tasks/s vs {runs * 3 / t_base:.1f} containers/s")


# ---------------------------------------------------------------------------------------- P3

LINE = "0123456789" * 7  # 71 bytes with the newline


async def p3_logs(server: Server, tmp: Path, mb: int) -> list[BenchRow]:
    """P3 on the default step (``tty: true``), with two more baselines measured in the same loop:
    ``docker run -t`` (Docker's own tty path: the pty, the shim and dockerd copy the output a few
    KiB at a time) and the same step with ``tty: false``."""
    size = mb * 1_000_000
    command = f"yes {LINE} | head -c {size}"
    repo = Repo(server, tmp / "p3", pipeline({"logs": [f"{{run: '{command}'}}"]}))
    notty = Repo(server, tmp / "p3-notty", pipeline({"logs": [f"{{run: {{command: '{command}', tty: false}}}}"]}))
    await asyncio.to_thread(repo.push)
    await asyncio.to_thread(notty.push)
    env = {**os.environ, "AGOLA_GATEWAY_URL": server.url, "AGOLA_TOKEN": server.token}
    growth: list[float] = []
    async with server.client() as gw:

        async def ours(repo: Repo = repo) -> None:
            run_id = await repo.create_run(gw)
            follower = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "agola.cli.main", "run", "logs", run_id, "-f",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=env,
            )
            before, peak = server.rss_mb(), 0.0
            while follower.returncode is None:
                peak = max(peak, server.rss_mb())
                try:
                    await asyncio.wait_for(follower.wait(), 0.1)
                except TimeoutError:
                    pass
            growth.append(peak - before)
            if follower.returncode != 0:
                raise RuntimeError(f"agola run logs -f exited {follower.returncode}")
            await wait_finished(gw, run_id)

        async def bare() -> None:
            await docker("run", "--rm", "--network", "none", IMAGE, "sh", "-c", command)

        async def bare_tty() -> None:
            await docker("run", "-t", "--rm", "--network", "none", IMAGE, "sh", "-c", command)

        n = 3
        t_ours, t_base, t_tty, t_notty = [], [], [], []
        for _ in range(n):
            t_base.append(await timed(bare))
            t_ours.append(await timed(ours))
            t_tty.append(await timed(bare_tty))
            t_notty.append(await timed(lambda: ours(notty)))
    o, b = statistics.median(t_ours), statistics.median(t_base)
    bt, on = statistics.median(t_tty), statistics.median(t_notty)
    g = max(growth)
    return [
        BenchRow("P3", f"a step printing {mb} MB, followed live by `agola run logs -f`, vs docker run > /dev/null",
                 o, b, "s", "<= 1.5x baseline", o <= 1.5 * b,
                 f"median of {n}; createrun -> follower exits; the step has the default tty (docker run -t: "
                 f"{bt:.2f} s)"),
        BenchRow("P3-tty", "the same, vs docker run -t > /dev/null (Docker's own tty path)", o, bt, "s",
                 "<= 1.5x baseline", o <= 1.5 * bt, f"median of {n}"),
        BenchRow("P3-notty", "the same step with tty: false, vs docker run > /dev/null", on, b, "s",
                 "<= 1.5x baseline", on <= 1.5 * b, f"median of {n}"),
        BenchRow("P3-rss", f"server RSS growth while streaming {mb} MB to a follower", g, None, "MB", "< 50 MB", g < 50,
                 "max over runs of (peak - before), process tree"),
    ]


# ---------------------------------------------------------------------------------------- L1

# A step that prints the host clock (containers share it) every 200 ms: busybox's date has no
# sub-second format, adjtimex prints the time in microseconds.
L1_STEP = ("for i in $(seq 1 {n}); do adjtimex | awk '/tv_sec/ {{s=$2}} /tv_usec/ {{u=$2}} "
           "END {{printf \"L1 %d.%06d\\n\", s, u}}'; usleep 200000; done")


def _delays(stamps: list[tuple[float, bytes]]) -> list[float]:
    """Per ``L1 <time>`` line: when it was seen minus when the step printed it, in ms."""
    out = []
    for seen, line in stamps:
        text = line.decode(errors="replace")
        at = text.find("L1 ")
        if at >= 0:
            try:
                out.append((seen - float(text[at + 3:].split()[0])) * 1000)
            except (ValueError, IndexError):
                continue
    return out


async def _cli_follower(env: dict[str, str], run_id: str) -> list[float]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agola.cli.main", "run", "logs", run_id, "-f",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=env,
    )
    assert proc.stdout is not None
    stamps = [(time.time(), line) async for line in proc.stdout]
    await proc.wait()
    return _delays(stamps)


async def _api_follower(server: Server, gw: GatewayClient, run_id: str) -> list[float]:
    """The gateway's ``/logs?follow`` stream read directly (what the web UI's live log relays)."""
    while True:  # until the step has started
        run = await gw.get_run(run_id)
        [task] = run.tasks.values()
        t = await gw.get_task(run_id, task.id)
        if t.steps and t.steps[0].phase not in ("notstarted", ""):
            break
        await asyncio.sleep(0.02)
    stamps: list[tuple[float, bytes]] = []
    pending = b""
    async for chunk in gw.stream_log(run_id, task.id, step=0, follow=True):
        now = time.time()
        *lines, pending = (pending + chunk).split(b"\n")
        stamps.extend((now, line) for line in lines)
    return _delays(stamps)


async def l1_live_delay(server: Server, tmp: Path, seconds: int) -> list[BenchRow]:
    """L1: a line printed by a step -> seen by a live follower, per line (p50, p90)."""
    n = seconds * 5
    repo = Repo(server, tmp / "l1", pipeline({"ticks": [f"{{run: {{command: {json.dumps(L1_STEP.format(n=n))}}}}}"]}))
    await asyncio.to_thread(repo.push)
    env = {**os.environ, "AGOLA_GATEWAY_URL": server.url, "AGOLA_TOKEN": server.token}
    rows = []
    async with server.client() as gw:
        run_id = await repo.create_run(gw)
        cli, api = await asyncio.gather(_cli_follower(env, run_id), _api_follower(server, gw, run_id))
        await wait_finished(gw, run_id)
    for name, what, delays in (("L1", "`agola run logs -f` (CLI process)", cli),
                               ("L1-api", "the gateway's /logs?follow stream (the web UI's source)", api)):
        if len(delays) < n // 2:
            raise RuntimeError(f"{name}: the follower saw {len(delays)} of {n} lines")
        p50 = statistics.median(delays)
        p90 = statistics.quantiles(delays, n=10)[-1]
        rows.append(BenchRow(name, f"a step's line -> {what}, one line every 200 ms for {seconds} s",
                             p50, None, "ms", "p50 < 100 ms", p50 < 100,
                             f"p50 of {len(delays)} lines; p90 {p90:.0f} ms, max {max(delays):.0f} ms "
                             "(the first lines wait for the follower to find the step)"))
    return rows


# ---------------------------------------------------------------------------------------- P7

def _step_seconds(step: Any) -> float:
    return (datetime.fromisoformat(step.end_time) - datetime.fromisoformat(step.start_time)).total_seconds()


async def p7_workspace(server: Server, tmp: Path, mb: int) -> BenchRow:
    make = [
        "{run: {name: generate, command: 'mkdir -p tree && for i in $(seq 1 " + str(mb) + "); "
        "do head -c 1048576 /dev/urandom > tree/f$i; done'}}",
        "{run: {name: tar, command: 'tar cf /tmp/ws.tar tree && mkdir /tmp/x && tar xf /tmp/ws.tar -C /tmp/x "
        "&& rm -rf /tmp/ws.tar /tmp/x'}}",
        "{save_to_workspace: {contents: [{source_dir: ., dest_dir: ., paths: ['tree/**']}]}}",
    ]
    text = pipeline({"make": make}) + (
        f"      - name: use\n        runtime: {{containers: [{{image: {IMAGE}}}]}}\n        depends: [make]\n"
        f"        steps:\n          - {{restore_workspace: {{dest_dir: .}}}}\n          - {{run: 'du -sm tree'}}\n"
    )
    repo = Repo(server, tmp / "p7", text)
    await asyncio.to_thread(repo.push)
    async with server.client() as gw:
        run = await wait_finished(gw, await repo.create_run(gw), poll=0.2)
        tasks = {t.name: t for t in run.tasks.values()}
        make_t = await gw.get_task(run.id, tasks["make"].id)
        use_t = await gw.get_task(run.id, tasks["use"].id)
    t_tar = _step_seconds(make_t.steps[1])
    t_save, t_restore = _step_seconds(make_t.steps[2]), _step_seconds(use_t.steps[0])
    t_ours = t_save + t_restore
    size_gb = mb / 1024
    ours_speed, tar_speed = size_gb / t_ours, size_gb / t_tar
    return BenchRow("P7", f"save + restore of a {mb} MiB workspace (random data) vs tar c + tar x of the same tree",
                    ours_speed * 1024, tar_speed * 1024, "MB/s", ">= 50% of tar's speed", ours_speed >= 0.5 * tar_speed,
                    f"ours {t_ours:.1f} s (save {t_save:.1f}, restore {t_restore:.1f}), tar c + x {t_tar:.1f} s (step times)")


async def run(quick: bool = False) -> list[BenchRow]:
    from agola.util.busyboximage import ensure_image

    if shutil.which("docker") is None or subprocess.run(["docker", "version"], capture_output=True).returncode:
        return [BenchRow(i, "needs a Docker engine", 0.0, None, "-", "-", None, "skipped: no Docker engine")
                for i in ("P1", "P2", "P3", "L1", "P7")]
    await asyncio.to_thread(ensure_image, IMAGE)
    tmp = Path(tempfile.mkdtemp(prefix="agola-bench-e2e-"))
    rows: list[BenchRow] = []
    try:
        server = Server(tmp / "server", limit=2)
        try:
            await server.start()
            await server.bootstrap()
            rows.extend(await p1_latency(server, tmp, 3 if quick else 10))
            rows.extend(await p3_logs(server, tmp, 20 if quick else 100))
            rows.extend(await l1_live_delay(server, tmp, 3 if quick else 10))
            rows.append(await p7_workspace(server, tmp, 100 if quick else 1024))
        finally:
            server.stop()
        rows.append(await p2_throughput(tmp, 10 if quick else 100))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows
