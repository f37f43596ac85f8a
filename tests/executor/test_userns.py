"""The Docker driver on an engine started with ``--userns-remap=default``: the pods' root is an
unprivileged host uid, which cannot open the executor's 0600 FIFOs in the pod's io dir (before the
check, the first workspace save failed with ``tar: can't open '/.agola/io/out-...': Permission
denied`` and a clone with the same error on ``in-...``). The driver sees the remapping in the
engine's info and moves the checkout, workspaces and caches through the Docker archive API by
itself, saying so once in its log; ``executor.docker.archiveAPIOnly`` forces the same path."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from agola.services.executor.drivers import dockerio
from agola.services.executor.drivers.docker import DockerDriver, DockerDriverConfig
from agola.services.executor.store import LocalArchiveStore
from agola.types.runservice import (
    CloneStep,
    RestoreCacheStep,
    RestoreWorkspaceStep,
    RunStep,
    SaveCacheStep,
    SaveContent,
    SaveToWorkspaceStep,
    WorkspaceOperation,
)
from tests.executor.helpers import EXECUTOR_ID, phases, runner, spec, step_log
from tests.executor.test_dockerio import CHECK_TREE, MAKE_TREE, expect_tree
from tests.support.logs import logged
from tests.support.services import BUSYBOX_BIN, missing
from tests.support.usernsdockerd import UsernsDockerd, unsupported_reason

REMAPPED = ("the Docker engine remaps the containers' root (userns-remap): workspaces, caches and the checkout "
            "go through the Docker archive API, not the pods' io dirs")


@pytest.fixture(scope="module")
def userns_engine() -> Iterator[UsernsDockerd]:
    reason = unsupported_reason()
    if reason:
        missing(reason)
    engine = UsernsDockerd()
    try:
        engine.start()
        yield engine
    finally:
        engine.stop()


@pytest.fixture(params=[False, True], ids=["detected", "archiveAPIOnly"])
async def userns_driver(request: pytest.FixtureRequest, userns_engine: UsernsDockerd,
                        tmp_path: Path) -> AsyncIterator[DockerDriver]:
    driver = DockerDriver(DockerDriverConfig(
        network="none", busybox_path=BUSYBOX_BIN, docker_url=userns_engine.url, io_dir=str(tmp_path / "pods"),
        archive_api_only=request.param,
    ))
    await driver.setup()
    yield driver
    for pod in await driver.list_pods(EXECUTOR_ID):
        await driver.remove_pod(pod.pod_id)
    await driver.close()


async def test_checkout_workspaces_and_caches_work_on_a_userns_remap_engine(
    userns_driver: DockerDriver, data_dir: Path, store: LocalArchiveStore, git_repo: dict[str, str],
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO, logger=dockerio.__name__)

    def no_fifo(*_: Any, **__: Any) -> Any:
        raise AssertionError("a FIFO was made for a pod whose root cannot open it")

    monkeypatch.setattr(dockerio.IoDir, "make_fifo", no_fifo)
    env = {"AGOLA_REPOSITORY_URL": git_repo["url"], "AGOLA_GIT_REF": git_repo["ref"]}
    task = spec(
        "t-userns",
        CloneStep(),
        RunStep(command="stat -c '%u %n' README src/main.sh && cat README && ./src/main.sh && cat /proc/self/uid_map"),
        RunStep(command=MAKE_TREE),
        SaveToWorkspaceStep(contents=[SaveContent(source_dir="out", dest_dir=".", paths=["**"])]),
        SaveCacheStep(key="tree", contents=[SaveContent(source_dir="out")]),
        RestoreWorkspaceStep(dest_dir="ws"),
        RestoreCacheStep(keys=["tree"], dest_dir="ws-cache"),
        RunStep(command=CHECK_TREE.format(dest="ws") + " && cd ../ws-cache && md5sum -c ../sums"),
        workspace_operations=[WorkspaceOperation(task_id="t-userns", step=3)],
        user="nobody",
        environment=env,
    )
    status = await runner(task, userns_driver, data_dir, store).run()
    logs = {i: step_log(data_dir, "t-userns", i) for i, s in enumerate(status.steps) if s.phase.value != "notstarted"}
    assert phases(status) == ["success"] * 8, logs
    # The checkout is in the pod, owned by the step user; the pod's root is not the host's.
    checked = logs[1].splitlines()
    assert checked[:4] == ["65534 README", "65534 src/main.sh", "second", "built"]
    uid_map = checked[4].split()
    assert uid_map[0] == "0" and uid_map[1] != "0", checked[4]
    expect_tree(logs[7], "ws")
    # Said once when detected; nothing to say when the config forces the archive API.
    expected = 0 if userns_driver.config.archive_api_only else 1
    assert len(logged(caplog, REMAPPED)) == expected
