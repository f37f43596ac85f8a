"""Executor benchmarks (Docker engine required; images built offline like the tests).

* P1 (executor level): a one-step ``echo`` task, from ``TaskRunner.run()`` to finished (pod created,
  setup, step, pod removed), against a bare ``docker run --rm`` of the same image and command,
  measured side by side. Also the driver-level cycle (create pod, exec, remove) for reference.
* Logs: 100 MB of step output written to the step log *and* followed live, against the same
  output sent to ``/dev/null`` inside the container; plus the executor's RSS growth meanwhile.
  With a tty (``E3-log-tty``): against ``docker exec -t`` of the same command read by the docker CLI.
* E7 (workspaces, part of P7): ``save_to_workspace`` and ``restore_workspace`` of a tree of 1 MiB
  random files (1 GiB; 256 MiB with ``--quick``), each against ``tar c`` / ``tar x`` of the same
  tree in the same container, measured separately (``e7_archives``).
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.common import BenchRow

IMAGE = "agola-test/busybox:latest"
# One id per bench process: its cleanup removes only its own pods (two benches at once on one engine
# used to remove each other's pods: "409 container is not running").
EXECUTOR_ID = f"bench-executor-{uuid.uuid4().hex[:8]}"


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def _median(fn: Callable[[], Awaitable[None]], n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


async def _docker_run_rm(cmd: list[str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        "docker", "run", "--rm", "--network", "none", IMAGE, *cmd,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    if await proc.wait() != 0:
        raise RuntimeError("docker run failed")


async def run(quick: bool = False) -> list[BenchRow]:
    from agola.services.executor.drivers.base import ContainerSpec, PodSpec
    from agola.services.executor.drivers.docker import DockerDriver, DockerDriverConfig
    from agola.services.executor.drivers.dockerpod import DockerPod
    from agola.services.executor.store import LocalArchiveStore
    from agola.services.executor.taskrunner import TaskRunner
    from agola.types.runservice import Container, ExecutorTaskPhase, ExecutorTaskSpecData, ExecutorTaskStatus, RunStep
    from tests.support.services import ensure_busybox_image

    ensure_busybox_image()
    n = 3 if quick else 10
    rows: list[BenchRow] = []
    tmp = Path(tempfile.mkdtemp(prefix="agola-bench-executor-"))
    store = LocalArchiveStore(tmp / "store")
    driver = DockerDriver(DockerDriverConfig(network="none"))
    await driver.setup()
    counter = iter(range(10**6))
    try:
        finished_after: list[float] = []

        async def task_echo() -> None:
            task_id = f"bench-{next(counter)}"
            spec = ExecutorTaskSpecData(containers=[Container(image=IMAGE)], steps=[RunStep(command="echo hello")])
            t0 = time.perf_counter()

            def on_status(status: ExecutorTaskStatus) -> None:
                if status.phase.is_finished:
                    finished_after.append(time.perf_counter() - t0)

            runner = TaskRunner(task_id, spec, driver, executor_id=EXECUTOR_ID, data_dir=tmp / "data", store=store,
                                on_status=on_status)
            status = await runner.run()
            if status.phase != ExecutorTaskPhase.SUCCESS:
                raise RuntimeError(f"bench task failed: {status.to_json()}")

        async def pod_echo() -> None:
            pod = await driver.create_pod(
                PodSpec(task_id="bench", executor_id=EXECUTOR_ID, containers=(ContainerSpec(image=IMAGE),))
            )
            try:
                await pod.exec(["echo", "hello"])
            finally:
                await pod.remove()

        async def bare() -> None:
            await _docker_run_rm(["echo", "hello"])

        await bare()  # warm the engine and the page cache once for everyone
        # Interleave so that load changes on the machine hit both sides alike.
        ours, base, pods = [], [], []
        for _ in range(n):
            ours.append(await _median(task_echo, 1))
            base.append(await _median(bare, 1))
            pods.append(await _median(pod_echo, 1))
        t_ours, t_base, t_pod = statistics.median(ours), statistics.median(base), statistics.median(pods)
        t_fin = statistics.median(finished_after)
        rows.append(BenchRow("E1", "one-step echo task start to finished status (executor level) vs docker run --rm",
                             t_fin, t_base, "s", "<= 1.5x baseline", t_fin <= 1.5 * t_base,
                             note=f"median of {n}; pod removal follows the status"))
        rows.append(BenchRow("E1-full", "one-step echo task including pod removal vs docker run --rm", t_ours, t_base,
                             "s", "<= 1.5x baseline", t_ours <= 1.5 * t_base, note=f"median of {n}"))
        rows.append(BenchRow("E1-pod", "create pod + exec echo + remove (driver level) vs docker run --rm", t_pod, t_base,
                             "s", "<= 1.5x baseline", t_pod <= 1.5 * t_base, note=f"median of {n}"))

        size_mb = 20 if quick else 100
        produce = f"head -c {size_mb * 1024 * 1024} /dev/zero | tr '\\0' x"

        async def followed_log(tty: bool = False) -> float:
            task_id = f"bench-log-{next(counter)}"
            spec = ExecutorTaskSpecData(containers=[Container(image=IMAGE)], steps=[RunStep(command=produce, tty=tty)])
            runner = TaskRunner(task_id, spec, driver, executor_id=EXECUTOR_ID, data_dir=tmp / "data", store=store)
            peak = _rss_mb()
            start_rss = peak
            running = asyncio.create_task(runner.run())
            while runner.logs is None or runner.logs.live(False, 0) is None:
                if running.done():
                    break
                await asyncio.sleep(0.005)
            received = 0
            t0 = time.perf_counter()
            live = runner.logs.live(False, 0) if runner.logs is not None else None
            if live is not None:
                async for chunk in live.follow():
                    received += len(chunk)
                    peak = max(peak, _rss_mb())
            elapsed = time.perf_counter() - t0
            await running
            if received != size_mb * 1024 * 1024:
                raise RuntimeError(f"follower got {received} bytes")
            followed_log.rss_growth = max(getattr(followed_log, "rss_growth", 0.0), peak - start_rss)  # type: ignore[attr-defined]
            return elapsed

        pod = await driver.create_pod(PodSpec(task_id="bench-null", executor_id=EXECUTOR_ID, containers=(ContainerSpec(image=IMAGE),)))
        try:
            async def devnull() -> float:
                t0 = time.perf_counter()
                await pod.exec(["sh", "-c", produce + " > /dev/null"])
                return time.perf_counter() - t0

            async def transport_only() -> float:
                async def drop(_: bytes) -> None:
                    pass

                t0 = time.perf_counter()
                await pod.exec(["sh", "-c", produce], stdout=drop)
                return time.perf_counter() - t0

            async def docker_exec_tty() -> float:
                # Docker's own tty path, read by its CLI: what a tty step's output costs the engine.
                assert isinstance(pod, DockerPod)
                t0 = time.perf_counter()
                proc = await asyncio.create_subprocess_exec(
                    "docker", "exec", "-t", pod.main.id, "sh", "-c", produce,
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
                if await proc.wait() != 0:
                    raise RuntimeError("docker exec -t failed")
                return time.perf_counter() - t0

            m = 1 if quick else 3
            ours_log, base_log, transport, ours_tty, base_tty = [], [], [], [], []
            for _ in range(m):
                ours_log.append(await followed_log())
                base_log.append(await devnull())
                transport.append(await transport_only())
                ours_tty.append(await followed_log(tty=True))
                base_tty.append(await docker_exec_tty())
        finally:
            await pod.remove()
        t_log, t_null, t_transport = statistics.median(ours_log), statistics.median(base_log), statistics.median(transport)
        rows.append(BenchRow("E3-log", f"{size_mb} MB of step output to the log file, followed live, vs > /dev/null",
                             t_log, t_null, "s", "<= 1.5x baseline", t_log <= 1.5 * t_null, note=f"median of {m}"))
        rows.append(BenchRow("E3-log-transport", "same, vs the Docker exec stream alone (output dropped by the executor)",
                             t_log, t_transport, "s", "<= 1.2x baseline", t_log <= 1.2 * t_transport,
                             note="what the log file and the follower add on top of Docker's own streaming"))
        t_ltty, t_btty = statistics.median(ours_tty), statistics.median(base_tty)
        rows.append(BenchRow("E3-log-tty", "same with a tty (the default of run steps), vs docker exec -t > /dev/null",
                             t_ltty, t_btty, "s", "<= 1.2x baseline", t_ltty <= 1.2 * t_btty,
                             note=f"median of {m}; Docker's tty path alone costs several times its stream without one"))
        growth = getattr(followed_log, "rss_growth", 0.0)
        rows.append(BenchRow("E3-log-rss", f"executor RSS growth while streaming {size_mb} MB", growth, None, "MB",
                             "< 50 MB", growth < 50))
        rows.extend(await e7_archives(driver, tmp, store, 256 if quick else 1024, 1 if quick else 3))
    finally:
        for info in await driver.list_pods(EXECUTOR_ID):
            await driver.remove_pod(info.pod_id)
        await driver.close()
        subprocess.run(["rm", "-rf", str(tmp)], check=False)
    return rows


async def e7_archives(driver: Any, tmp: Path, store: Any, mb: int, repeat: int) -> list[BenchRow]:
    """Save and restore of an ``mb`` MiB workspace through the step runner (local store), each
    against busybox ``tar c`` / ``tar x`` of the same tree in the same container (interleaved)."""
    from agola.services.executor.drivers.base import ContainerSpec, PodSpec
    from agola.services.executor.logs import LogFile
    from agola.services.executor.steps import StepRunner
    from agola.types.runservice import (
        Container,
        ExecutorTaskSpecData,
        RestoreWorkspaceStep,
        SaveContent,
        SaveToWorkspaceStep,
        WorkspaceOperation,
    )

    pod = await driver.create_pod(PodSpec(task_id="bench-e7", executor_id=EXECUTOR_ID, containers=(ContainerSpec(image=IMAGE),)))
    try:
        make = f"mkdir -p /w/tree && cd /w/tree && for i in $(seq {mb}); do head -c 1048576 /dev/urandom > f$i; done"
        if await pod.exec(["sh", "-c", make]) != 0:
            raise RuntimeError("cannot make the tree")
        spec = ExecutorTaskSpecData(containers=[Container(image=IMAGE)], steps=[],
                                    workspace_operations=[WorkspaceOperation(task_id="bench-e7", step=0)])
        runner = StepRunner(task_id="bench-e7", spec=spec, pod=pod, task_dir=tmp / "e7", store=store,
                            working_dir="/w", home="/root")
        log = LogFile(tmp / "e7" / "log")
        save = SaveToWorkspaceStep(contents=[SaveContent(source_dir=".", dest_dir=".", paths=["tree/**"])])
        restore = RestoreWorkspaceStep(dest_dir="/r")

        async def timed_exec(cmd: str) -> float:
            t0 = time.perf_counter()
            if await pod.exec(["sh", "-c", cmd]) != 0:
                raise RuntimeError(f"{cmd} failed")
            return time.perf_counter() - t0

        async def ours_save() -> float:
            t0 = time.perf_counter()
            if await runner.save_to_workspace(0, save, log) != 0:
                raise RuntimeError("save failed")
            return time.perf_counter() - t0

        async def ours_restore() -> float:
            await pod.exec(["rm", "-rf", "/r"])
            t0 = time.perf_counter()
            if await runner.restore_workspace(restore, log) != 0:
                raise RuntimeError("restore failed")
            return time.perf_counter() - t0

        saves, tar_cs, restores, tar_xs = [], [], [], []
        for _ in range(repeat):
            saves.append(await ours_save())
            tar_cs.append(await timed_exec("tar cf /tmp/ws.tar -C /w tree"))
            restores.append(await ours_restore())
            tar_xs.append(await timed_exec("rm -rf /x && mkdir /x && tar xf /tmp/ws.tar -C /x"))
            await pod.exec(["rm", "-rf", "/tmp/ws.tar", "/x", "/r"])
        log.close()
    finally:
        await pod.remove()
    gib = mb / 1024
    rows = []
    for rid, what, ours, base in (("E7-save", "save_to_workspace", saves, tar_cs),
                                  ("E7-restore", "restore_workspace", restores, tar_xs)):
        t_ours, t_base = statistics.median(ours), statistics.median(base)
        rows.append(BenchRow(rid, f"{what} of {mb} MiB (1 MiB random files) vs busybox tar in the same container",
                             gib * 1024 / t_ours, gib * 1024 / t_base, "MB/s", ">= 50% of tar's speed",
                             t_base / t_ours >= 0.5, note=f"median of {repeat}: ours {t_ours:.2f} s, tar {t_base:.2f} s"))
    return rows


if __name__ == "__main__":
    import sys

    for row in asyncio.run(run(quick="--quick" in sys.argv)):
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
        print(f"{row.id:10} {row.ours:8.3f} {row.unit:3} base={row.baseline} ratio={ratio} met={row.met}  {row.what}")
