"""Docker's own CPU per task: ``python bench/tools/dockercpu.py [--tasks 30]`` (root, cgroup v2).

Not a ``python -m bench`` area (it starts a second Docker engine). It starts a private ``dockerd``
(own data root, exec root and socket under a temp dir) inside a cgroup of its own on the unified
(v2) hierarchy, its containers under another (``--cgroup-parent``): the first cgroup's ``cpu.stat``
counts dockerd, containerd, every shim and every runc run, and nothing of other users of the
machine's engine; the second the containers' own processes (where ``runc init`` of an exec runs).
The busybox test image is copied from the machine's engine.

Then, strictly interleaved task by task (the load moves the figures more than the variants do):
``docker run --rm`` through the API, our one-step ``echo`` task through ``TaskRunner``, and a
prototype where container 0's command runs the step (no exec); and the end of a running container
0 by force delete vs ended by itself (stdin closed, ``dockerend``). Each figure runs from before
the task to the exit of its shim. See docs/executor.md, "Docker's cost per task (session 5)".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aiodocker

from agola.services.executor.drivers.docker import DockerDriver, DockerDriverConfig
from agola.services.executor.drivers.dockerend import STDIN_CONFIG, end_by_itself
from agola.services.executor.drivers.dockerstart import BUSYBOX, sleeper
from agola.services.executor.store import LocalArchiveStore
from agola.services.executor.taskrunner import TaskRunner
from agola.types.runservice import Container, ExecutorTaskPhase, ExecutorTaskSpecData, RunStep
from tests.support.services import BUSYBOX_BIN, ensure_busybox_image

IMAGE = "agola-test/busybox:latest"


def unified_root() -> Path:
    for root in (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup")):
        if (root / "cgroup.procs").exists() and (root / "cpu.stat").exists():
            return root
    raise SystemExit("needs a cgroup v2 hierarchy (/sys/fs/cgroup/unified or /sys/fs/cgroup)")


class Engine:
    """A private dockerd in its own cgroup."""

    def __init__(self) -> None:
        self.name = f"agola-dockercpu-{uuid.uuid4().hex[:6]}"
        self.root = unified_root()
        self.cg = self.root / self.name
        self.ctr_cg = self.root / f"{self.name}-ctr"
        self.dir = Path(tempfile.mkdtemp(prefix="agola-dockercpu-"))
        self.url = f"unix://{self.dir}/docker.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    def cpu(self) -> float:
        return _usage(self.cg)

    def ctr_cpu(self) -> float:
        return _usage(self.ctr_cg) if self.ctr_cg.exists() else 0.0

    def shims(self) -> int:
        count = 0
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if "shim" in Path(f"/proc/{pid}/comm").read_text() and str(self.dir) in Path(f"/proc/{pid}/cmdline").read_text():
                    count += 1
            except OSError:
                pass
        return count

    async def start(self) -> None:
        self.cg.mkdir()
        procs = self.cg / "cgroup.procs"
        with open(self.dir / "dockerd.log", "wb") as log:  # the daemon keeps its own copy of the fd
            self.proc = subprocess.Popen(
                ["dockerd", "--bridge=none", "--iptables=false", "-H", self.url, "--data-root", str(self.dir / "data"),
                 "--exec-root", str(self.dir / "exec"), "--pidfile", str(self.dir / "dockerd.pid"),
                 "--cgroup-parent", f"/{self.ctr_cg.name}"],
                stdout=log, stderr=subprocess.STDOUT, preexec_fn=lambda: procs.write_text(str(os.getpid())),
            )
        env = {**os.environ, "DOCKER_HOST": self.url}
        for _ in range(300):
            if subprocess.run(["docker", "info"], env=env, capture_output=True).returncode == 0:
                break
            await asyncio.sleep(0.1)
        save = subprocess.Popen(["docker", "save", IMAGE], stdout=subprocess.PIPE, env={**os.environ})
        subprocess.run(["docker", "load", "-q"], stdin=save.stdout, env=env, check=True, capture_output=True)
        save.wait()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)
        for cg in (self.ctr_cg, self.cg):
            for child in sorted(cg.glob("*/"), reverse=True) if cg.exists() else []:
                _rmdir(child)
            _rmdir(cg)


def _usage(cg: Path) -> float:
    for line in (cg / "cpu.stat").read_text().splitlines():
        key, value = line.split()
        if key == "usage_usec":
            return int(value) / 1e6
    raise RuntimeError(f"no usage_usec in {cg}/cpu.stat")


def _rmdir(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass  # a process still in it: the cgroup goes when it ends (an empty leftover is harmless)


def c0_config(entrypoint: list[str]) -> dict[str, Any]:
    return {
        "Image": IMAGE, "Entrypoint": entrypoint, "Cmd": [], "Tty": False, **STDIN_CONFIG,
        "HostConfig": {"NetworkMode": "none", "Binds": [f"{BUSYBOX_BIN}:{BUSYBOX}:ro"],
                       "Mounts": [{"Type": "tmpfs", "Target": "/.agola/tmp",
                                   "TmpfsOptions": {"SizeBytes": 16 << 20, "Mode": 0o1777}}]},
    }


async def main(tasks: int) -> None:
    ensure_busybox_image()
    engine = Engine()
    try:
        await engine.start()
        docker = aiodocker.Docker(url=engine.url)
        driver = DockerDriver(DockerDriverConfig(network="none", docker_url=engine.url, busybox_path=BUSYBOX_BIN))
        await driver.setup()
        tmp = Path(tempfile.mkdtemp(prefix="agola-dockercpu-tasks-"))
        store = LocalArchiveStore(tmp / "store")
        counter = iter(range(10**6))

        async def docker_run() -> None:
            c = await docker.containers.create({"Image": IMAGE, "Cmd": ["echo", "hello"], "AttachStdout": True,
                                                "AttachStderr": True, "HostConfig": {"AutoRemove": True, "NetworkMode": "none"}})
            async with docker._query(f"containers/{c.id}/wait", method="POST", params={"condition": "removed"}) as w:
                await c.start()
                await w.read()

        async def ours() -> None:
            spec = ExecutorTaskSpecData(containers=[Container(image=IMAGE)], steps=[RunStep(command="echo hello")])
            runner = TaskRunner(f"cpu-{next(counter)}", spec, driver, executor_id="dockercpu", data_dir=tmp / "data",
                                store=store)
            status = await runner.run()
            if status.phase != ExecutorTaskPhase.SUCCESS:
                raise RuntimeError(f"task failed: {status.to_json()}")

        async def prototype() -> None:
            c = await docker.containers.create(
                c0_config([BUSYBOX, "sh", "-c", "mkdir -p /root/project && cd /root/project && echo hello"]))
            async with docker._query(f"containers/{c.id}/wait", method="POST", params={"condition": "next-exit"}) as w:
                await c.start()
                await w.read()
            await c.delete(force=True)

        async def running_c0() -> aiodocker.containers.DockerContainer:
            c = await docker.containers.create(c0_config(list(sleeper())))
            await c.start()
            return c

        async def end_force(c: aiodocker.containers.DockerContainer) -> None:
            await c.delete(force=True)

        async def end_itself(c: aiodocker.containers.DockerContainer) -> None:
            if not await end_by_itself(docker, c.id):
                raise RuntimeError("container 0 did not end by itself")
            await c.delete(force=True)

        async def settle() -> None:
            for _ in range(2000):
                if not engine.shims():
                    return
                await asyncio.sleep(0.005)

        async def measured(fn: Callable[[], Awaitable[None]]) -> tuple[float, float]:
            cpu, ctr = engine.cpu(), engine.ctr_cpu()
            await fn()
            await settle()
            return (engine.cpu() - cpu) * 1000, (engine.ctr_cpu() - ctr) * 1000

        variants: dict[str, Callable[[], Awaitable[None]]] = {
            "docker run --rm (API)": docker_run, "ours (TaskRunner)": ours, "prototype, no exec": prototype,
        }
        for fn in variants.values():
            await fn()  # warm
        await settle()
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in [*variants, "end: force delete",
                                                                             "end: by itself + delete"]}
        loads = []
        for i in range(tasks):
            loads.append(os.getloadavg()[0])
            order = list(variants) if i % 2 == 0 else list(reversed(variants))
            for name in order:
                results[name].append(await measured(variants[name]))
            for name, end in (("end: force delete", end_force), ("end: by itself + delete", end_itself))[:: 1 if i % 2 else -1]:
                c = await running_c0()
                results[name].append(await measured(lambda c=c, end=end: end(c)))  # type: ignore[misc]
                await settle()
        await driver.close()
        await docker.close()
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"{tasks} of each, interleaved; load average {min(loads):.1f}-{max(loads):.1f}")
        base = statistics.median(a + b for a, b in results["docker run --rm (API)"])
        for name, values in results.items():
            docker_ms = [a for a, _ in values]
            q = statistics.quantiles(docker_ms)
            total = statistics.median(a + b for a, b in values)
            ratio = f"{total / base:4.2f}x docker run" if not name.startswith("end") else ""
            print(f"{name:26s} Docker CPU {statistics.median(docker_ms):6.1f} ms (q1-q3 {q[0]:5.1f}-{q[2]:5.1f}),"
                  f" in the container {statistics.median(b for _, b in values):5.1f} ms  {ratio}")
    finally:
        engine.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=30)
    asyncio.run(main(parser.parse_args().tasks))
