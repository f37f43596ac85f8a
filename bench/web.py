"""Web UI benchmarks (issue 15).

* U1: the runs page (``GET /runs?group=<group>``, HTML, page of 25) of a group holding 100,000
  runs, p50 as a client on loopback sees it (so: server time plus one loopback round trip), with
  the API's JSON list of the same query as the baseline; U1-filter: the same page filtered on
  ``result=failed`` (one run in ten).
  The control plane (configstore, runservice, gateway) runs in this process; the runs are written
  through the runservice's datamanager, as ``bench/runservice.py`` does.
* U2: a step prints a line -> the line is in the task page of headless Chromium, p50. The step
  (host driver) prints ``mark-<i>-end`` as soon as a marker file exists; the time runs from the
  file's creation to Playwright seeing the text in the log (its polling included).
* U3: Chromium's memory with a step log of 100 MB open in the task page (tail shown, then five
  earlier ranges loaded): the PSS of the tab's renderer process (proportional set size: shared
  pages split between their users), with all of Chromium's and the page's JS heap in the note.

U2 and U3 run a real ``agola serve`` (``bench/e2e.py``'s ``Server``, host driver) and Debian's
``/usr/bin/chromium`` driven by Playwright (never ``playwright install``). ``quick``: 10,000
runs, 5 lines, a 20 MB log.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from agola.client import GatewayClient
from agola.config import parse_config, with_generated_api_token
from agola.services import registry
from agola.services.role import RoleHost
from agola.services.runservice.role import RunserviceRole
from agola.services.runservice.store import DT_RUN
from agola.storage.datamanager import Action
from agola.types.runservice import Run, RunPhase, RunResult
from bench.common import BenchRow
from bench.e2e import ADMIN, Repo, Server, free_port, pipeline

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--enable-precise-memory-info"]
CONTROL_PLANE = ("configstore", "runservice", "gateway")
WAL_ACTIONS = 2000


# ---------------------------------------------------------------------------------------- U1

async def _control_plane(root: Path) -> tuple[RoleHost, RunserviceRole, str]:
    ports = {c: free_port() for c in CONTROL_PLANE}
    text = f"dataDir: {root}\n"
    for c in CONTROL_PLANE:
        text += f"{c}:\n  web: {{listenAddress: '127.0.0.1:{ports[c]}'}}\n"
        text += f"  adminToken: {ADMIN}\n" if c == "gateway" else ""
    config = parse_config(text)
    config.validate(set(CONTROL_PLANE))
    config = with_generated_api_token(config, CONTROL_PLANE)
    roles = [registry.load_role(c)(config) for c in registry.ordered(set(CONTROL_PLANE))]
    host = RoleHost(roles, shutdown_timeout=2)
    await host.start()
    [runservice] = [r for r in roles if isinstance(r, RunserviceRole)]
    return host, runservice, f"http://127.0.0.1:{ports['gateway']}"


async def _store_runs(role: RunserviceRole, group: str, n: int) -> None:
    """``n`` finished runs in ``group``, one in ten failed, written as archived runs."""
    assert role.dm is not None and role.readdb is not None
    now = datetime(2026, 1, 1, tzinfo=UTC)
    batch: list[Action] = []
    for i in range(n):
        run_id = f"{1:013d}-{i + 1:013d}"
        result = RunResult.FAILED if i % 10 == 0 else RunResult.SUCCESS
        run = Run(id=run_id, name="bench", counter=i + 1, group=group, phase=RunPhase.FINISHED, result=result,
                  enqueue_time=now, start_time=now, end_time=now, archived=True,
                  annotations={"branch": "main", "message": f"commit {i}"})
        batch.append(Action.put(DT_RUN, run_id, run.to_json_bytes()))
        if len(batch) >= WAL_ACTIONS:
            await role.dm.write_wal(batch)
            batch = []
    if batch:
        await role.dm.write_wal(batch)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        row = await role.readdb.db.fetchone("SELECT count(*) FROM run_ost")
        if row and row[0] >= n:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("the runservice readdb did not catch up")


async def _p50s(session: aiohttp.ClientSession, targets: list[tuple[str, str, dict[str, str]]],
                requests: int) -> list[float]:
    """Median milliseconds of each ``(url, text expected in the answer, headers)``, the requests
    interleaved so that load changes hit them all alike."""
    times: list[list[float]] = [[] for _ in targets]
    for i in range(requests + 1):
        for (url, expect, headers), out in zip(targets, times):
            started = time.perf_counter()
            async with session.get(url, headers=headers) as resp:
                body = await resp.text()
            if resp.status != 200 or expect not in body:
                raise RuntimeError(f"GET {url}: {resp.status}")
            if i:  # the first round warms up
                out.append((time.perf_counter() - started) * 1000)
    return [statistics.median(t) for t in times]


async def u1_runs_page(tmp: Path, n_runs: int, requests: int) -> list[BenchRow]:
    host, runservice, url = await _control_plane(tmp / "u1")
    try:
        async with GatewayClient(url, ADMIN) as gw:
            user = await gw.create_user("bench")
            token = await gw.create_user_token("bench", "t")
        group = f"/user/{user.id}/branch/main"
        await _store_runs(runservice, group, n_runs)
        # aiohttp keeps no cookie of an IP address unless told to.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            async with session.post(f"{url}/login", data={"token": token, "next": "/"}) as resp:
                if resp.status != 200 or "Recent runs" not in await resp.text():
                    raise RuntimeError(f"sign-in failed: {resp.status}")
            base = f"{url}/runs?group=/user/{user.id}"
            page, failed, api = await _p50s(session, [
                (base, f'<td class="num">{n_runs}</td>', {}),
                (base + "&result=failed", f'<td class="num">{n_runs - 9}</td>', {}),
                (f"{url}/api/v1alpha/runs?group=/user/{user.id}&limit=25", f'"counter":{n_runs}',
                 {"Authorization": f"token {token}"}),
            ], requests)
    finally:
        await host.stop()
    what = f"runs page of a group of {n_runs:,} runs (HTML, 25 a page), p50, vs the API's JSON list"
    return [
        BenchRow("U1", what, round(page, 2), round(api, 2), "ms", "< 100 ms", page < 100,
                 f"median of {requests}, client on loopback, interleaved with the API's"),
        BenchRow("U1-filter", "the same page filtered on result=failed (1 run in 10), p50", round(failed, 2), None,
                 "ms", "< 100 ms", failed < 100, f"median of {requests}"),
    ]


# ------------------------------------------------------------------------------------ U2, U3

def _pss_mb(pid: int) -> float:
    """Proportional set size of a process in MB: shared pages (Chromium's processes share most
    of their libraries) counted once, split between their users."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                children = [int(c) for c in (task / "children").read_text().split()]
                out.extend(children)
                todo.extend(children)
        except OSError:
            continue
    return out


def _chromium_pss_mb(server_pid: int) -> tuple[float, float]:
    """PSS of this process's descendants but the agola server's (Playwright's driver and every
    Chromium process), and of the largest Chromium renderer among them (the tab's)."""
    excluded = {server_pid, *_descendants(server_pid)}
    pids = [p for p in _descendants(os.getpid()) if p not in excluded]
    renderers = [p for p in pids if _is_renderer(p)]
    return sum(_pss_mb(p) for p in pids), max((_pss_mb(p) for p in renderers), default=0.0)


def _is_renderer(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    # Chromium rewrites its argv into one string: look for the flag anywhere.
    return b"chromium" in cmdline and b"--type=renderer" in cmdline


async def _signed_in_page(browser: Any, url: str, token: str) -> Any:
    context = await browser.new_context(base_url=url, viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    page.set_default_timeout(120_000)
    await page.goto("/login")
    await page.get_by_label("API token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("heading", name="Recent runs").wait_for()
    return page


async def _task_id(gw: GatewayClient, run_id: str, phase: str) -> str:
    while True:
        run = await gw.get_run(run_id)
        [task] = run.tasks.values()
        if phase == "running" and task.status == "running":
            steps = (await gw.get_task(run_id, task.id)).steps
            if steps and steps[0].phase == "running":
                return str(task.id)
        if phase == "finished" and run.phase == "finished":
            return str(task.id)
        await asyncio.sleep(0.05)


async def u2_line_latency(server: Server, browser: Any, tmp: Path, lines: int) -> BenchRow:
    markers = tmp / "u2-markers"
    markers.mkdir()
    loop = (f"i=1; while [ $i -le {lines} ]; do while [ ! -e {markers}/go$i ]; do sleep 0.005; done; "
            "echo mark-$i-end; i=$((i+1)); done")
    step = f"{{run: {{name: marks, command: '{loop}'}}}}"
    repo = Repo(server, tmp / "u2", pipeline({"marks": [step]}))
    await asyncio.to_thread(repo.push)
    page = await _signed_in_page(browser, server.url, server.token)
    async with server.client() as gw:
        run_id = await repo.create_run(gw)
        task_id = await _task_id(gw, run_id, "running")
        await page.goto(f"/runs/{run_id}/tasks/{task_id}")
        await page.get_by_text("following…").wait_for()
        times = []
        for i in range(1, lines + 1):
            started = time.perf_counter()
            (markers / f"go{i}").touch()
            await page.wait_for_function(
                "n => (document.querySelector('details.step[open] .log') || {}).textContent?.includes(n)",
                arg=f"mark-{i}-end", polling="raf")
            times.append((time.perf_counter() - started) * 1000)
    await page.context.close()
    p50 = statistics.median(times)
    return BenchRow("U2", "a step prints a line -> visible in the task page (Chromium), p50", round(p50, 1), 500.0,
                    "ms", "< 250 ms", p50 < 250,
                    f"median of {lines}; baseline: Agola's 500 ms poll; includes the step's 5 ms wait loop")


async def u3_big_log_memory(server: Server, browser: Any, tmp: Path, mb: int) -> BenchRow:
    line = "x" * 99
    step = f"{{run: {{name: big, command: 'yes {line} | head -c {mb * 1_000_000}; echo THE END'}}}}"
    repo = Repo(server, tmp / "u3", pipeline({"big": [step]}))
    await asyncio.to_thread(repo.push)
    assert server.proc is not None
    page = await _signed_in_page(browser, server.url, server.token)
    before = _chromium_pss_mb(server.proc.pid)
    async with server.client() as gw:
        run_id = await repo.create_run(gw)
        task_id = await _task_id(gw, run_id, "finished")
    await page.goto(f"/runs/{run_id}/tasks/{task_id}")
    await page.locator("details.step[open] .log .ln").last.filter(has_text="THE END").wait_for()
    earlier = page.get_by_role("button", name="Load earlier lines")
    for _ in range(5):
        count = await page.locator("details.step[open] .log .ln").count()
        await earlier.click()
        await page.wait_for_function(
            "n => document.querySelectorAll('details.step[open] .log .ln').length > n", arg=count)
    total, tab = _chromium_pss_mb(server.proc.pid)
    heap = await page.evaluate("performance.memory.usedJSHeapSize") / 1e6
    lines = await page.locator("details.step[open] .log .ln").count()
    await page.context.close()
    return BenchRow("U3", f"the tab's memory with a {mb} MB step log open (tail + 5 earlier ranges)", round(tab, 1),
                    None, "MB", "< 300 MB", tab < 300,
                    f"PSS of the tab's renderer ({before[1]:.0f} MB on the sign-in page before); all of Chromium "
                    f"and Playwright's driver: {total:.0f} MB ({before[0]:.0f} MB before); JS heap {heap:.1f} MB; "
                    f"{lines:,} lines in the page")


async def run(quick: bool = False) -> list[BenchRow]:
    tmp = Path(tempfile.mkdtemp(prefix="agola-bench-web-"))
    rows: list[BenchRow] = []
    try:
        rows.extend(await u1_runs_page(tmp, 10_000 if quick else 100_000, 20 if quick else 100))
        try:
            from playwright.async_api import async_playwright
        except ImportError:
            return rows + [BenchRow(i, "needs playwright", 0.0, None, "-", "-", None, "skipped: no playwright")
                           for i in ("U2", "U3")]
        if not os.path.exists(CHROMIUM):
            return rows + [BenchRow(i, "needs chromium", 0.0, None, "-", "-", None, f"skipped: no {CHROMIUM}")
                           for i in ("U2", "U3")]
        server = Server(tmp / "server", driver="host", limit=2)
        try:
            await server.start()
            await server.bootstrap()
            async with async_playwright() as pw:
                # A browser each, so that U3's memory is not U2's leftovers.
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    rows.append(await u2_line_latency(server, browser, tmp, 5 if quick else 30))
                finally:
                    await browser.close()
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    rows.append(await u3_big_log_memory(server, browser, tmp, 20 if quick else 100))
                finally:
                    await browser.close()
        finally:
            server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


if __name__ == "__main__":
    for row in asyncio.run(run(quick=True)):
        print(row)
