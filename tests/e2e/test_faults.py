"""Fault injection on real processes (issue 16 item 12): the split installation of
``tests/e2e/split.py`` (control plane and executor as two ``agola serve`` processes, on an etcd and
an S3 server of this module's own) while its dependencies go away under running runs:

- etcd stopped for 10 s: no agola process exits, the runs complete once it is back;
- the S3 server stopped for 10 s (SIGSTOP/SIGCONT: ``moto_server`` keeps its objects in memory, a
  real restart would wipe them): the runs complete or fail saying why, and what was stored before
  (a finished run's logs, the users) is still there.

(The executor killed mid-run is ``test_lost_work.py``; a data directory filling up is below, on a
small tmpfs.)
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agola.errors import AgolaError
from agola.roleclients.configstore import ConfigstoreClient
from agola.types.configstore import CreateUserRequest
from tests.e2e.split import ADMIN, SplitStack
from tests.e2e.test_split_processes import cli, new_user, work_tree
from tests.services.test_rebuildable_state import Site
from tests.support.services import EtcdServer, S3Server
from tests.support.waiting import wait_for_sync

OUTAGE = 10.0  # seconds a dependency stays away
PIPELINE = """\
version: v0
runs:
  - name: run01
    tasks:
      - name: first
        runtime: {{containers: [{{image: {image}}}]}}
        steps:
          - {{type: run, command: 'echo first-start; sleep 6; echo first-end'}}
      - name: second
        runtime: {{containers: [{{image: {image}}}]}}
        depends: [first]
        steps:
          - {{type: run, command: echo second-done}}
"""


@pytest.fixture(scope="module")
def deps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EtcdServer, S3Server]]:
    """An etcd and an S3 server for this module alone: they are stopped under the stack."""
    work = tmp_path_factory.mktemp("fault-deps")
    etcd = EtcdServer(work / "etcd")
    s3 = S3Server(work / "s3.log")
    etcd.start()
    try:
        s3.start()
        yield etcd, s3
    finally:
        if s3.proc is not None:
            s3.resume()
        s3.stop()
        etcd.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, deps: tuple[EtcdServer, S3Server],
          busybox_image: str) -> Iterator[SplitStack]:
    etcd, s3 = deps
    s = SplitStack(tmp_path_factory.mktemp("faults"), etcd.endpoint, s3)
    try:
        s.start()
        wait_for_sync(lambda: cli(s, ADMIN, "user", "list").exit_code == 0, 30, 0.1, "configstore ready")
        yield s
    finally:
        s.close()


def _alive(stack: SplitStack) -> None:
    for p in stack.processes:
        assert p.proc is not None and p.proc.poll() is None, f"{p.name} exited: {p.stderr[-3000:]}"


def _hold_outage(stack: SplitStack) -> None:
    """The dependency stays away OUTAGE seconds; every agola process must stay up meanwhile."""
    end = time.monotonic() + OUTAGE
    while time.monotonic() < end:
        _alive(stack)
        time.sleep(0.5)


def _runs(stack: SplitStack, token: str) -> list[dict[str, Any]]:
    shown = cli(stack, token, "run", "list", "--json")
    assert shown.exit_code == 0, shown.output
    runs: list[dict[str, Any]] = json.loads(shown.stdout)
    return runs


def _start_runs(stack: SplitStack, token: str, repo: Path, count: int) -> set[str]:
    before = {r["id"] for r in _runs(stack, token)}
    for i in range(count):  # one branch each: runs of one branch run one at a time
        started = cli(stack, token, "directrun", "start", "-C", str(repo), "--branch", f"b{i}")
        assert started.exit_code == 0, started.output

    def all_running() -> set[str]:
        new = {r["id"]: r for r in _runs(stack, token) if r["id"] not in before}
        return set(new) if len(new) == count and all(r["phase"] == "running" for r in new.values()) else set()

    ids: set[str] = wait_for_sync(all_running, 60, 0.2, f"{count} runs running")
    # The first task's step has started on the executor (its log is being written).
    for run_id in ids:
        def step_started(run_id: str = run_id) -> bool:
            return "first-start" in cli(stack, token, "run", "logs", run_id, "-t", "first", "--step", "0").output
        wait_for_sync(step_started, 60, 0.2, "first step started")
    return ids


def _finished(stack: SplitStack, token: str, ids: set[str], timeout: float = 90) -> dict[str, dict[str, Any]]:
    def done() -> dict[str, dict[str, Any]]:
        runs = {r["id"]: r for r in _runs(stack, token) if r["id"] in ids}
        return runs if len(runs) == len(ids) and all(r["phase"] == "finished" for r in runs.values()) else {}

    finished: dict[str, dict[str, Any]] = wait_for_sync(done, timeout, 0.5, "runs finished")
    return finished


def _runs_through_outage(stack: SplitStack, token: str, repo: Path, stop: Callable[[], None],
                         restart: Callable[[], None]) -> dict[str, dict[str, Any]]:
    """Two runs in their first task when the dependency goes away for OUTAGE seconds: every
    agola process stays up; the runs once they finished."""
    ids = _start_runs(stack, token, repo, 2)
    stop()
    try:
        _hold_outage(stack)
    finally:
        restart()
    return _finished(stack, token, ids)


def test_etcd_stopped_for_10s_during_runs(stack: SplitStack, deps: tuple[EtcdServer, S3Server],
                                          tmp_path: Path, busybox_image: str) -> None:
    etcd, _ = deps
    token = new_user(stack, "etcdfault")
    repo = work_tree(tmp_path / "work", PIPELINE.format(image=busybox_image))
    runs = _runs_through_outage(stack, token, repo, etcd.stop, etcd.start)
    assert {r["result"] for r in runs.values()} == {"success"}, runs
    for run_id in runs:
        logs = cli(stack, token, "run", "logs", run_id, "-t", "second", "--step", "0")
        assert logs.exit_code == 0 and "second-done" in logs.output, logs.output
    _alive(stack)


def test_s3_stopped_for_10s_during_runs(stack: SplitStack, deps: tuple[EtcdServer, S3Server],
                                        tmp_path: Path, busybox_image: str) -> None:
    _, s3 = deps
    token = new_user(stack, "s3fault")
    repo = work_tree(tmp_path / "work", PIPELINE.format(image=busybox_image))
    # Stored before the outage: a finished run (its logs archived) and the user.
    [earlier] = _start_runs(stack, token, repo, 1)
    _finished(stack, token, {earlier})
    runs = _runs_through_outage(stack, token, repo, s3.pause, s3.resume)
    for run in runs.values():
        if run["result"] != "success":  # failing is allowed, failing without a reason is not
            shown = cli(stack, token, "run", "show", run["id"])
            assert "failed: " in shown.output, shown.output
    logs = cli(stack, token, "run", "logs", earlier, "-t", "first", "--step", "0")
    assert logs.exit_code == 0 and "first-end" in logs.output, logs.output
    # The logs of the steps that ended while S3 was away are archived once it is back.
    for run in runs.values():
        if run["result"] == "success":
            def archived(run_id: str = run["id"]) -> bool:
                shown = cli(stack, token, "run", "logs", run_id, "-t", "first", "--step", "0")
                return shown.exit_code == 0 and "first-end" in shown.output
            wait_for_sync(archived, 60, 0.5, f"run {run['id']} logs readable")
    assert "s3fault" in cli(stack, ADMIN, "user", "list").output
    _alive(stack)


# ---------------------------------------------------------------------------------------------
# A data directory on a small tmpfs that fills up.


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mount -t tmpfs not permitted here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_a_full_data_dir_gives_clear_errors_and_no_corruption(small_fs: Path) -> None:
    """A configstore (embedded coordination, readdb, posix objects) on a 16 MiB tmpfs: writes
    refused while it is full say so; once space returns, writes work and, after a restart,
    every acknowledged object is there."""
    site = Site(small_fs)
    filler = small_fs / "filler"
    acknowledged: list[str] = []
    errors: list[str] = []
    async with site.running():
        await site.wait_healthy()
        client = ConfigstoreClient(site.url)
        await client.create_user(CreateUserRequest(user_name="before"))
        acknowledged.append("before")
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        with contextlib.suppress(OSError):  # fill the disk up to the last block
            while True:
                os.write(fd, b"\0" * 4096)
        os.close(fd)
        for i in range(20):
            try:
                await client.create_user(CreateUserRequest(user_name=f"full{i}"))
                acknowledged.append(f"full{i}")
            except AgolaError as exc:
                errors.append(str(exc))
        assert errors, "some write must have been refused on a full disk"
        assert all("No space left on device" in e or "disk is full" in e for e in errors), errors
        filler.unlink()
        await client.create_user(CreateUserRequest(user_name="after"))
        acknowledged.append("after")
        await client.close()
    async with site.running():
        await site.wait_healthy()
        client = ConfigstoreClient(site.url)
        names = {u.name for u in await client.list_users(limit=100)}
        await client.close()
    assert set(acknowledged) <= names, (acknowledged, names)
    assert not list(small_fs.rglob("*.corrupt-*")), "the readdb was found damaged"
