"""Container 0's pid 1 as the step runner: no ``docker exec`` per command, and what a command sees
(environment, working dir, signals, tty, exit status) is what ``docker exec`` gives it."""

from __future__ import annotations

import asyncio
import functools
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agola.services.executor.drivers.base import ContainerSpec, PodSpec
from agola.services.executor.drivers.docker import DockerDriver
from agola.services.executor.drivers.dockerpod import DockerPod
from agola.services.executor.drivers.dockerrunner import shares_mounts
from agola.services.executor.store import LocalArchiveStore
from agola.types.runservice import RunStep
from tests.executor.helpers import EXECUTOR_ID, phases, runner, spec, step_log
from tests.support.services import BUSYBOX_IMAGE, missing
from tests.support.waiting import wait_for


class Capture:
    def __init__(self) -> None:
        self.data = bytearray()

    async def __call__(self, chunk: bytes) -> None:
        self.data.extend(chunk)

    @property
    def text(self) -> str:
        return self.data.decode(errors="replace")


def count_execs(pod: DockerPod) -> list[list[str]]:
    """The commands that went through ``docker exec`` from now on."""
    calls: list[list[str]] = []
    original = pod.main.exec

    @functools.wraps(original)
    async def exec_(cmd: list[str], *args: Any, **kwargs: Any) -> Any:
        calls.append(cmd)
        return await original(cmd, *args, **kwargs)

    setattr(pod.main, "exec", exec_)  # noqa: B010 - an instance attribute over the method
    return calls


async def by_exec(pod: DockerPod, cmd: list[str], **kwargs: Any) -> tuple[int, bytes]:
    """``cmd`` through ``docker exec``, the runner set aside."""
    out = Capture()
    runner_, pod._runner = pod._runner, None
    try:
        rc = await pod.exec(cmd, stdout=out, **kwargs)
    finally:
        pod._runner = runner_
    return rc, bytes(out.data)


async def by_runner(pod: DockerPod, cmd: list[str], **kwargs: Any) -> tuple[int, bytes]:
    out = Capture()
    rc = await pod.exec(cmd, stdout=out, **kwargs)
    return rc, bytes(out.data)


@pytest.fixture
async def pod(docker_driver: DockerDriver, busybox_image: str) -> AsyncIterator[DockerPod]:
    created = await docker_driver.create_pod(
        PodSpec(task_id=f"t-runner-{uuid.uuid4().hex[:6]}", executor_id=EXECUTOR_ID,
                containers=(ContainerSpec(image=busybox_image, env={"IN_CONTAINER": "c0"}),),
                working_dir="~/project")
    )
    assert isinstance(created, DockerPod)
    try:
        yield created
    finally:
        await created.remove()


async def test_commands_go_through_pid_1_as_docker_exec_would_run_them(pod: DockerPod) -> None:
    execs = count_execs(pod)
    assert await pod.make_working_dir("~/project") == "/root/project"  # pid 1 made it as it started

    # Output, a separate stderr, the exit status.
    out, err = Capture(), Capture()
    rc = await pod.exec(["sh", "-c", "echo out; echo err >&2; exit 7"], stdout=out, stderr=err)
    assert (rc, out.text, err.text) == (7, "out\n", "err\n")

    # The same environment (the container's plus the command's), working dir, user, signal
    # dispositions (nothing ignored: a background job of a shell would ignore INT and QUIT),
    # stdin and open file descriptors as through docker exec.
    probe = ["sh", "-c", "env | sort; pwd; id; grep -E '^Sig(Ign|Blk)' /proc/self/status; "
                         "ls /proc/self/fd | tr '\\n' ' '; echo; read line; echo read=$?"]
    options: dict[str, Any] = {"env": {"STEP_VAR": "it's $HOME \"quoted\"\n2nd line"}, "working_dir": "/tmp"}
    expected = await by_exec(pod, probe, **options)
    execs.clear()
    assert expected[0] == 0 and b"STEP_VAR=it's $HOME \"quoted\"" in expected[1]
    assert await by_runner(pod, probe, **options) == expected
    assert execs == []

    # A working dir that does not exist and a missing command fail as with docker exec (126, 127).
    rc, text = await by_runner(pod, ["true"], working_dir="/nonexistent")
    assert rc == 126 and "/nonexistent" in text.decode()
    rc, text = await by_runner(pod, ["/bin/nonexistent"])
    assert rc in (126, 127) and "nonexistent" in text.decode()

    # A script goes to the pod's tmpfs in the same request; its secrets never touch a disk: the io
    # dir only ever holds FIFOs.
    out = Capture()
    rc = await pod.run_script(["sh", "-e"], b"echo $SECRET | wc -c; find /.agola/io ! -type p ! -type d\n",
                              "step-1.sh", env={"SECRET": "s3cr3t"}, stdout=out)
    assert (rc, out.text.split()) == (0, ["7", "/.agola/io/.agola-io"])  # the executor's marker
    assert execs == []

    # What a command leaves running may go on writing to its stdout (no EPIPE, no blocking), but
    # that is not the command's output.
    rc, text = await by_runner(pod, ["sh", "-c", "(sleep 0.3; head -c 3000000 /dev/zero; echo $? > /tmp/late) & "
                                                 "echo now"])
    assert (rc, text) == (0, b"now\n")

    async def late_write_done() -> bool:
        return (await by_runner(pod, ["cat", "/tmp/late"]))[0] == 0

    await wait_for(late_write_done, timeout=10, interval=0.1)
    assert await by_runner(pod, ["cat", "/tmp/late"]) == (0, b"0\n")

    # Commands of another user go through docker exec.
    rc, text = await by_runner(pod, ["id", "-un"], user="nobody")
    assert (rc, text, len(execs)) == (0, b"nobody\n", 1)


async def test_a_tty_step_gets_the_pods_tty_as_its_controlling_terminal(pod: DockerPod) -> None:
    execs = count_execs(pod)
    script = ("printf 'a\\nb\\n'; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-tty; "
              "echo via-dev-tty > /dev/tty; stty size; ps -o pid,tty,comm | awk '$1 == \"1\" {print \"pid1\", $2}'")
    expected = await by_exec(pod, ["sh", "-c", script], tty=True)
    execs.clear()
    got = await by_runner(pod, ["sh", "-c", script], tty=True)
    assert got == expected
    assert got[1].startswith(b"a\r\nb\r\nall-tty\r\nvia-dev-tty\r\n")
    # Each tty step has a terminal of its own: modes set by an earlier step are gone, and what a
    # step left running (ignoring the hang-up signal) may still write to its terminal, as after
    # docker exec -t, but that is nobody's output.
    late = "(trap '' HUP; sleep 0.3; echo late; echo $? > /tmp/late-{}) & sleep 0.1"
    assert await by_exec(pod, ["sh", "-c", "stty -onlcr; " + late.format("exec")], tty=True) == (0, b"")
    execs.clear()
    assert await by_runner(pod, ["sh", "-c", "stty -onlcr; " + late.format("runner")], tty=True) == (0, b"")
    rc, text = await by_runner(pod, ["sh", "-c", "sleep 0.5; echo x"], tty=True)
    assert (rc, text) == (0, b"x\r\n")

    async def late_writes_done() -> bool:
        rc, out = await by_runner(pod, ["sh", "-c", "cat /tmp/late-exec /tmp/late-runner"])
        return rc == 0 and len(out.split()) == 2

    await wait_for(late_writes_done, timeout=10, interval=0.1)
    assert await by_runner(pod, ["cat", "/tmp/late-exec", "/tmp/late-runner"]) == (0, b"0\n0\n")
    # A signal the step sends itself works (not ignored), a large output arrives whole.
    assert (await by_runner(pod, ["sh", "-c", "kill -INT $$; echo survived"], tty=True))[0] == 130
    rc, text = await by_runner(pod, ["sh", "-c", "yes 0123456789abcdef | head -c 3000000"], tty=True)
    assert (rc, len(text), text.count(b"\r\n")) == (0, 3000000 + 3000000 // 17, 3000000 // 17)
    assert execs == []


async def test_a_killed_pod_ends_its_running_command_and_later_ones_use_docker_exec(pod: DockerPod) -> None:
    execs = count_execs(pod)
    out = Capture()
    running = asyncio.create_task(pod.exec(["sh", "-c", "echo started; sleep 1000"], stdout=out))
    await wait_for(lambda: "started" in out.text, timeout=30)
    # While it runs, another command goes through docker exec instead of waiting for it.
    assert await by_runner(pod, ["echo", "beside"]) == (0, b"beside\n")
    assert len(execs) == 1
    # A cancelled command may still run in pid 1: the runner takes no more requests.
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert await by_runner(pod, ["echo", "after"]) == (0, b"after\n")
    assert len(execs) == 2

    # Killed with its pod, a command ends with 137.
    second = await pod._driver.create_pod(PodSpec(task_id="t-runner-kill", executor_id=EXECUTOR_ID,
                                                  containers=(ContainerSpec(image=BUSYBOX_IMAGE),)))
    assert isinstance(second, DockerPod)
    try:
        out = Capture()
        running = asyncio.create_task(second.exec(["sh", "-c", "echo started; sleep 1000"], stdout=out))
        await wait_for(lambda: "started" in out.text, timeout=30)
        await second.stop()
        assert await asyncio.wait_for(running, 30) == 137
    finally:
        await second.remove()


async def test_a_task_runs_its_steps_without_docker_exec(
    docker_driver: DockerDriver, data_dir: Path, store: LocalArchiveStore,
) -> None:
    created: list[Any] = []
    create_pod = docker_driver.create_pod

    async def recording_create_pod(*args: Any, **kwargs: Any) -> Any:
        pod = await create_pod(*args, **kwargs)
        created.append(pod)
        created.append(count_execs(pod))  # type: ignore[arg-type]
        return pod

    docker_driver.create_pod = recording_create_pod  # type: ignore[method-assign]
    try:
        task_id = f"t-runner-task-{uuid.uuid4().hex[:6]}"
        task = spec(task_id, RunStep(command="echo one; echo $TASK_VAR", tty=True), RunStep(command="exit 3", tty=False),
                    environment={"TASK_VAR": "two"})
        status = await runner(task, docker_driver, data_dir, store).run()
    finally:
        del docker_driver.create_pod
    assert phases(status) == ["success", "failed"]
    assert step_log(data_dir, task_id, 0) == "one\ntwo\n"  # read_text: its \r\n read as \n
    assert created[1] == []  # no docker exec at all: working dir, shell lookup and steps


def test_only_an_engine_in_the_executors_mount_namespace_gets_step_runners(tmp_path: Path) -> None:
    # The local engine (tests run beside it) resolves /dev/pts/<n> as the executor does...
    assert shares_mounts("/var/run/docker.sock")
    # ... one in a mount namespace of its own (an executor in a container, rootless Docker) may not.
    sock = tmp_path / "engine.sock"
    server = ("import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(); "
              "print('ready', flush=True); c, _ = s.accept(); c.recv(1)")
    try:
        proc = subprocess.Popen(["unshare", "--mount", sys.executable, "-c", server, str(sock)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError:
        missing("unshare (util-linux)")
    try:
        assert proc.stdout is not None
        if proc.stdout.readline() != b"ready\n":
            missing(f"unshare --mount: {proc.stderr.read().decode() if proc.stderr else ''}")
        assert not shares_mounts(str(sock))
        assert not shares_mounts(str(tmp_path / "no-engine.sock"))
    finally:
        proc.kill()
        proc.wait()
