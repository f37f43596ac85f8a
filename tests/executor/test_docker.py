"""Docker pods: sidecars on localhost, any image (even without a shell), labels, privileged, tmpfs, user."""

from __future__ import annotations

import asyncio
import functools
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from agola.services.executor.drivers.base import (
    ContainerSpec,
    Pod,
    PodSetupError,
    PodSpec,
    RegistryCredentials,
    TmpfsMount,
)
from agola.services.executor.drivers.docker import PRIVILEGED_REFUSED, DockerDriver, find_registry_auth, image_registry
from agola.services.executor.store import LocalArchiveStore
from agola.types.runservice import (
    Container,
    ExecutorTaskPhase,
    RestoreCacheStep,
    RestoreWorkspaceStep,
    RunStep,
    SaveCacheStep,
    SaveContent,
    SaveToWorkspaceStep,
    Volume,
    VolumeTmpFS,
    WorkspaceOperation,
)
from tests.executor.helpers import EXECUTOR_ID, phases, runner, setup_log, spec, step_log
from tests.support.services import BUSYBOX_IMAGE
from tests.support.waiting import wait_for


async def output(pod: Pod, cmd: list[str], **kw: Any) -> tuple[int, str]:
    buf = bytearray()

    async def sink(data: bytes) -> None:
        buf.extend(data)

    rc = await pod.exec(cmd, stdout=sink, **kw)
    return rc, buf.decode()


async def test_pod_with_a_sidecar_reachable_on_localhost(docker_driver: DockerDriver, busybox_image: str) -> None:
    pod = await docker_driver.create_pod(
        PodSpec(
            task_id="t-sidecar",
            executor_id=EXECUTOR_ID,
            containers=(
                ContainerSpec(image=busybox_image, env={"IN_CONTAINER": "c0"}, tmpfs=(TmpfsMount("/scratch", 8 << 20),)),
                ContainerSpec(image=busybox_image,
                              entrypoint=("/bin/sh", "-c",
                                          "echo from-sidecar > /www/index.html; exec httpd -f -p 127.0.0.1:8080 -h /www"),
                              tmpfs=(TmpfsMount("/www"),)),
            ),
        )
    )
    try:
        async def served() -> bool:
            rc, out = await output(pod, ["wget", "-q", "-O-", "http://127.0.0.1:8080/"])
            return rc == 0 and out == "from-sidecar\n"

        await wait_for(served, timeout=10, interval=0.1)
        rc, out = await output(pod, ["sh", "-c", "echo $IN_CONTAINER; df -k /scratch | tail -1"])
        assert rc == 0
        env_line, df_line = out.splitlines()
        assert env_line == "c0"
        assert df_line.split()[1] == str(8 << 10)  # tmpfs size in KiB

        pods = await docker_driver.list_pods(EXECUTOR_ID)
        assert [(p.pod_id, p.task_id) for p in pods] == [(pod.id, "t-sidecar")]
        assert await docker_driver.remove_orphans(EXECUTOR_ID, {"t-sidecar"}) == []
        assert await docker_driver.remove_orphans(EXECUTOR_ID, set()) == [pod.id]
        assert await docker_driver.list_pods(EXECUTOR_ID) == []
    finally:
        await pod.remove()


async def test_container0_keeps_running_and_reaps_zombies(docker_driver: DockerDriver, busybox_image: str) -> None:
    pod = await docker_driver.create_pod(
        PodSpec(task_id="t-reap", executor_id=EXECUTOR_ID, containers=(ContainerSpec(image=busybox_image),))
    )
    try:
        # The subshell exits at once, its background child is re-parented to pid 1 and exits later.
        assert await pod.exec(["sh", "-c", "(sleep 0.2 &); true"]) == 0

        async def no_zombies() -> bool:
            rc, out = await output(pod, ["ps", "-o", "stat,comm"])
            return rc == 0 and "sleep" not in out and not any(line.startswith("Z") for line in out.splitlines())

        await wait_for(no_zombies, timeout=10, interval=0.1)
        _rc, out = await output(pod, ["sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"])
        assert out.startswith("/.agola/bin/busybox sh -c")
    finally:
        await pod.remove()


async def test_exec_streams_exit_codes_and_missing_binaries(docker_driver: DockerDriver, busybox_image: str) -> None:
    pod = await docker_driver.create_pod(
        PodSpec(task_id="t-exec", executor_id=EXECUTOR_ID, containers=(ContainerSpec(image=busybox_image, user="nobody"),))
    )
    try:
        out, err = bytearray(), bytearray()

        async def o(d: bytes) -> None:
            out.extend(d)

        async def e(d: bytes) -> None:
            err.extend(d)

        rc = await pod.exec(["sh", "-c", "echo out; echo err >&2; id -u; exit 7"], stdout=o, stderr=e)
        assert (rc, out.decode(), err.decode()) == (7, "out\n65534\n", "err\n")
        assert (await output(pod, ["id", "-u"], user="root"))[1] == "0\n"
        rc, text = await output(pod, ["/bin/nonexistent"])
        assert rc in (126, 127) and "nonexistent" in text
        assert await pod.home_dir("nobody") == "/home"
        assert await pod.home_dir("root") == "/root"
    finally:
        await pod.remove()


async def test_privileged_is_refused_unless_allowed(docker_driver: DockerDriver, busybox_image: str, data_dir: Path,
                                                    store: LocalArchiveStore) -> None:
    with pytest.raises(PodSetupError, match="privileged"):
        await docker_driver.create_pod(
            PodSpec(task_id="t-priv", executor_id=EXECUTOR_ID, containers=(ContainerSpec(image=busybox_image, privileged=True),))
        )
    task = spec("t-priv", RunStep(command="true"), containers=[Container(image=busybox_image, privileged=True)])
    status = await runner(task, docker_driver, data_dir, store).run()
    assert status.phase == ExecutorTaskPhase.FAILED and status.setup_step.phase == ExecutorTaskPhase.FAILED
    assert phases(status) == ["notstarted"]
    assert PRIVILEGED_REFUSED in setup_log(data_dir, "t-priv")
    assert await docker_driver.list_pods(EXECUTOR_ID) == []


async def test_missing_image_fails_setup_with_the_reason(docker_driver: DockerDriver, data_dir: Path, store: LocalArchiveStore) -> None:
    # No registry is reachable here: the pull fails and the setup log says why.
    task = spec("t-noimage", RunStep(command="true"), image="127.0.0.1:1/agola-test/none:latest")
    status = await runner(task, docker_driver, data_dir, store).run()
    assert status.setup_step.phase == ExecutorTaskPhase.FAILED
    log = setup_log(data_dir, "t-noimage")
    assert "Pulling image 127.0.0.1:1/agola-test/none:latest" in log and "Pod failed to start. Error:" in log


async def test_distroless_image_runs_steps_without_a_shell(
    docker_driver: DockerDriver, distroless_image: str, data_dir: Path, store: LocalArchiveStore
) -> None:
    """Only /busybox (a static binary, no applet links) in the image: no /bin/sh, no tar, no mkdir, no sha256sum."""
    producer = spec(
        "t-dl-produce",
        RunStep(command="mkdir -p out; echo payload > out/file"),  # the default shell falls back to busybox sh
        SaveToWorkspaceStep(contents=[SaveContent(source_dir="out", dest_dir="ws", paths=["**"])]),
        SaveCacheStep(key='c-{{ sha256sum "out/file" }}', contents=[SaveContent(source_dir="out", paths=["**"])]),
        image=distroless_image,
        shell="/bin/sh -e",
    )
    status = await runner(producer, docker_driver, data_dir, store).run()
    assert phases(status) == ["success"] * 3, step_log(data_dir, "t-dl-produce", 0)
    assert "not found in the image" in step_log(data_dir, "t-dl-produce", 0)

    consumer = spec(
        "t-dl-consume",
        RestoreWorkspaceStep(dest_dir="."),
        RestoreCacheStep(keys=["c-"], dest_dir="cache"),
        RunStep(command="hello", shell="/busybox cat ws/file cache/file"),  # a run step that needs no shell
        workspace_operations=[WorkspaceOperation(task_id="t-dl-produce", step=1)],
        image=distroless_image,
    )
    status = await runner(consumer, docker_driver, data_dir, store).run()
    assert phases(status) == ["success"] * 3, step_log(data_dir, "t-dl-consume", 2)
    # `/busybox cat a b <script>`: cat prints both files, then the script file itself.
    assert step_log(data_dir, "t-dl-consume", 2).replace("\r\n", "\n") == "payload\npayload\nhello\n"


async def test_task_user_owns_the_working_dir_and_restored_files(
    docker_driver: DockerDriver, data_dir: Path, store: LocalArchiveStore
) -> None:
    task = spec(
        "t-user",
        RunStep(command="mkdir -p out; echo x > out/f"),
        SaveToWorkspaceStep(contents=[SaveContent(source_dir="out", dest_dir="ws", paths=["**"])]),
        RestoreWorkspaceStep(dest_dir="again"),
        RunStep(command="pwd; id -u; echo more >> again/ws/f && cat again/ws/f"),
        RunStep(command="echo $CENV $OVER; df -k /scratch | tail -1 | awk '{print $2}'"),
        user="nobody",
        workspace_operations=[WorkspaceOperation(task_id="t-user", step=1)],
        containers=[Container(image=BUSYBOX_IMAGE, environment={"CENV": "container", "OVER": "container"},
                              volumes=[Volume(path="/scratch", tmpfs=VolumeTmpFS(size=4 << 20))])],
        environment={"OVER": "task"},
    )
    r = runner(task, docker_driver, data_dir, store)
    # The workspace of step 1 is restored by step 2 of the same task: make it available in time.
    status = await r.run()
    assert phases(status) == ["success"] * 5, step_log(data_dir, "t-user", 3)
    assert step_log(data_dir, "t-user", 3).replace("\r\n", "\n") == "/home/project\n65534\nx\nmore\n"
    # Container env < task env; the tmpfs volume has the asked size (KiB).
    assert step_log(data_dir, "t-user", 4).replace("\r\n", "\n") == "container task\n4096\n"


def test_registry_matching() -> None:
    creds = RegistryCredentials(username="u", password="p")
    assert image_registry("busybox") == "docker.io"
    assert image_registry("quay.io/org/img:1") == "quay.io"
    assert image_registry("localhost:5000/img") == "localhost:5000"
    assert find_registry_auth("quay.io/org/img", {"https://quay.io/v2/": creds}) is creds
    assert find_registry_auth("quay.io/org/img", {"ghcr.io": creds}) is None
    assert find_registry_auth("library/busybox", {"https://index.docker.io/v1/": creds}) is creds


async def test_task_with_a_service_container(docker_driver: DockerDriver, data_dir: Path, store: LocalArchiveStore) -> None:
    """The runtime of a task: a service container (entrypoint split on spaces) reached on localhost."""
    task = spec(
        "t-service",
        RunStep(command="for i in $(seq 100); do wget -q -O- http://127.0.0.1:8080/group && exit 0; sleep 0.1; done; exit 1"),
        containers=[Container(image=BUSYBOX_IMAGE), Container(image=BUSYBOX_IMAGE, entrypoint="httpd -f -p 127.0.0.1:8080 -h /etc")],
    )
    status = await runner(task, docker_driver, data_dir, store).run()
    assert phases(status) == ["success"], step_log(data_dir, "t-service", 0)
    assert "root:x:0:" in step_log(data_dir, "t-service", 0)
    assert await docker_driver.list_pods(EXECUTOR_ID) == []


async def _container_events(driver: DockerDriver, task_id: str, seen: list[tuple[str, str, dict[str, str]]]) -> None:
    """Follow the engine's events of a task's containers: (action, container index, attributes)."""
    filters = json.dumps({"type": ["container"], "label": [f"agola.io/taskid={task_id}"]})
    async with driver.docker._query("events", params={"filters": filters}, timeout=None) as response:
        async for line in response.content:
            event = json.loads(line)
            attrs = event.get("Actor", {}).get("Attributes", {})
            seen.append((event.get("Action", ""), attrs.get("agola.io/containerindex", ""), attrs))


async def test_a_finished_pod_ends_by_itself_and_a_stopped_one_is_killed(
    docker_driver: DockerDriver, data_dir: Path, store: LocalArchiveStore,
) -> None:
    # At the end of a task container 0's pid 1 (the step runner) exits 0 when the executor asks it
    # to (no kill, whatever the steps left running or tried to kill); the service container is
    # removed first.
    task_id = f"t-end-{uuid.uuid4().hex[:8]}"
    task = spec(
        task_id,
        # pid 1 shrugs off TERM and KILL (pid namespace init), and so does it when a step also
        # kills every other process of its shell's name.
        RunStep(command="sleep 1000 >/dev/null 2>&1 & kill -TERM 1; kill -KILL 1 || :; for s in TERM KILL; do "
                        "kill -$s $(ps -o pid,args | awk '/[b]usybox (cat|sh -c trap)/ && $1 != 1 {print $1}') || :; "
                        "done; echo left"),
        RunStep(command="ps -o pid,args | awk '$1 == 1' | grep -c '[b]usybox sh'"),
        containers=[Container(image=BUSYBOX_IMAGE), Container(image=BUSYBOX_IMAGE, entrypoint="sleep 1000")],
    )
    seen: list[tuple[str, str, dict[str, str]]] = []
    follower = asyncio.create_task(_container_events(docker_driver, task_id, seen))
    try:
        await asyncio.sleep(0)
        status = await runner(task, docker_driver, data_dir, store).run()
        assert phases(status) == ["success", "success"], step_log(data_dir, task_id, 1)
        assert int(step_log(data_dir, task_id, 1)) >= 1
        await wait_for(lambda: ("destroy", "0") in [(a, i) for a, i, _ in seen], timeout=30)
        main = [(a, attrs.get("exitCode")) for a, i, attrs in seen if i == "0" and a in ("kill", "die", "destroy")]
        assert main == [("die", "0"), ("destroy", None)], seen
        assert [a for a, i, _ in seen if i == "1" and a in ("kill", "die", "destroy")][-1] == "destroy"
        assert await docker_driver.list_pods(EXECUTOR_ID) == []

        # A stopped task's pod is killed at once, the running step with it.
        seen.clear()
        stopped = runner(spec(task_id, RunStep(command="echo started; sleep 1000")), docker_driver, data_dir, store)
        run = asyncio.create_task(stopped.run())
        await wait_for(lambda: "started" in step_log(data_dir, task_id, 0), timeout=30)
        stopped.stop()
        status = await run
        assert (status.phase.value, phases(status)) == ("stopped", ["stopped"])
        await wait_for(lambda: ("destroy", "0") in [(a, i) for a, i, _ in seen], timeout=30)
        assert ("kill", "0") in [(a, i) for a, i, _ in seen]
    finally:
        follower.cancel()


@pytest.mark.parametrize(
    ("container_user", "working_dir", "expected"),
    [
        ("", "~/deep/wd", "/root/deep/wd root"),  # made by container 0's pid 1 as it starts
        ("", "/abs//wd/", "/abs/wd root"),
        # pid 1 (nobody) cannot write its HOME (/home, root's): the exec fallback makes it theirs
        ("nobody", "~/project", "/home/project nobody"),
    ],
)
async def test_working_dir_made_at_pod_start(
    docker_driver: DockerDriver, data_dir: Path, store: LocalArchiveStore,
    container_user: str, working_dir: str, expected: str,
) -> None:
    task = spec("t-wd", RunStep(command="pwd; stat -c %U ."), working_dir=working_dir,
                containers=[Container(image=BUSYBOX_IMAGE, user=container_user)])
    status = await runner(task, docker_driver, data_dir, store).run()
    assert phases(status) == ["success"], step_log(data_dir, "t-wd", 0)
    assert step_log(data_dir, "t-wd", 0).split() == expected.split()
    assert f'Creating working dir "{working_dir}".' in setup_log(data_dir, "t-wd")


async def test_a_pod_setup_cancelled_at_any_point_leaves_no_container(docker_driver: DockerDriver,
                                                                      busybox_image: str) -> None:
    # An executor stopping while a pod is being set up cancels create_pod: whether the engine was
    # still creating container 0 (the create request sent, its answer not read yet) or starting
    # it, nothing of the pod may stay behind (a "created" container was left before).
    async def pod_containers(pod_id: str) -> list[Any]:
        found = await docker_driver.docker.containers.list(
            all=True, filters=json.dumps({"label": [f"agola.io/podid={pod_id}"]}))
        return list(found)

    for cancel_after in ("engine-has-it", 0, 3, 10, 30, 100):
        spec = PodSpec(task_id="t-cancelled", executor_id=EXECUTOR_ID,
                       containers=(ContainerSpec(image=busybox_image), ContainerSpec(image=busybox_image)))
        setup = asyncio.create_task(docker_driver.create_pod(spec))
        if cancel_after == "engine-has-it":
            await wait_for(functools.partial(pod_containers, spec.pod_id), timeout=10, interval=0.005)
        else:
            for _ in range(int(cancel_after)):
                await asyncio.sleep(0)
        setup.cancel()
        try:
            pod = await setup
        except asyncio.CancelledError:
            pass
        else:  # it finished before the cancellation reached it
            await pod.remove()
        assert await pod_containers(spec.pod_id) == [], f"cancelled after {cancel_after}"
