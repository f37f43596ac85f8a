"""Step semantics, identical on the Docker driver and the host driver (each test runs on both)."""

from __future__ import annotations

import asyncio
import io
import tarfile
from pathlib import Path

from agola.services.executor.drivers.base import Driver
from agola.services.executor.store import LocalArchiveStore
from agola.types.runservice import (
    CloneStep,
    ExecutorTaskPhase,
    RestoreCacheStep,
    RestoreWorkspaceStep,
    RunStep,
    SaveCacheStep,
    SaveContent,
    SaveToWorkspaceStep,
    WorkspaceOperation,
)
from tests.executor.helpers import phases, runner, setup_log, spec, step_log


async def test_run_steps_env_precedence_exit_status_and_stop_at_first_failure(
    driver: Driver, data_dir: Path, store: LocalArchiveStore
) -> None:
    task = spec(
        "t-run",
        RunStep(command="echo task=$A step=$B both=$C; echo to-stderr >&2", environment={"B": "step", "C": "step"}, tty=False),
        RunStep(command="cd sub 2>/dev/null || mkdir sub; pwd", working_dir="~/project"),
        RunStep(command="# " + "x" * 70000 + "\necho big-script-ok"),  # too big to pass inline
        RunStep(command="echo before; exit 3"),
        RunStep(command="echo never"),
        environment={"A": "task", "C": "task"},
    )
    status = await runner(task, driver, data_dir, store).run()
    assert status.phase == ExecutorTaskPhase.FAILED
    assert phases(status) == ["success", "success", "success", "failed", "notstarted"]
    assert [s.exit_status for s in status.steps] == [0, 0, 0, 3, None]
    # Both streams reach the step log (their relative order is not guaranteed without a tty).
    assert sorted(step_log(data_dir, "t-run", 0).splitlines()) == ["task=task step=step both=step", "to-stderr"]
    assert step_log(data_dir, "t-run", 1).strip().endswith("/project")
    assert step_log(data_dir, "t-run", 2).strip() == "big-script-ok"
    assert step_log(data_dir, "t-run", 3).strip() == "before"
    assert not (data_dir / "tasks/t-run/logs/steps/4.log").exists()
    assert 'Creating working dir "' in setup_log(data_dir, "t-run")


async def test_clone_checks_out_the_commit_on_the_host_and_copies_it_in(
    driver: Driver, data_dir: Path, store: LocalArchiveStore, git_repo: dict[str, str]
) -> None:
    env = {"AGOLA_REPOSITORY_URL": git_repo["url"], "AGOLA_GIT_REF": git_repo["ref"], "AGOLA_GIT_COMMITSHA": git_repo["first"]}
    task = spec(
        "t-clone",
        CloneStep(depth=1),
        RunStep(command="cat README; ./src/main.sh; test -d .git && echo has-git"),
        environment=env,
    )
    status = await runner(task, driver, data_dir, store).run()
    assert phases(status) == ["success", "success"], step_log(data_dir, "t-clone", 0)
    # The ref has moved past "first": the executor fetched the commit itself.
    assert step_log(data_dir, "t-clone", 1).splitlines() == ["first", "built", "has-git"]


async def test_clone_with_explicit_source_at_the_ref_head(
    driver: Driver, data_dir: Path, store: LocalArchiveStore, git_repo: dict[str, str]
) -> None:
    env = {"AGOLA_REPOSITORY_URL": git_repo["url"], "AGOLA_GIT_REF": git_repo["ref"]}  # no commit: the ref's head
    task = spec("t-clone2", CloneStep(), RunStep(command="cat README"), environment=env)
    status = await runner(task, driver, data_dir, store).run()
    assert phases(status) == ["success", "success"], step_log(data_dir, "t-clone2", 0)
    assert step_log(data_dir, "t-clone2", 1) == "second\n"


async def test_clone_failure_fails_the_step_with_git_output(driver: Driver, data_dir: Path, store: LocalArchiveStore) -> None:
    env = {"AGOLA_REPOSITORY_URL": "file:///nonexistent/repo.git", "AGOLA_GIT_REF": "refs/heads/main"}
    status = await runner(spec("t-noclone", CloneStep(), environment=env), driver, data_dir, store).run()
    assert phases(status) == ["failed"]
    assert "git fetch failed" in step_log(data_dir, "t-noclone", 0)


async def test_workspaces_across_a_three_level_dag(driver: Driver, data_dir: Path, store: LocalArchiveStore) -> None:
    """a (level 0) -> b (level 1) -> c (level 2); c restores both ancestors' archives in order."""
    a = spec(
        "task-a",
        RunStep(command="mkdir -p build/bin docs; echo A > build/bin/tool; echo doc > docs/x.md; echo skip > build/tmp.o"),
        SaveToWorkspaceStep(contents=[
            SaveContent(source_dir="build", dest_dir="/dist", paths=["bin/**"]),
            SaveContent(source_dir=".", dest_dir="docs-out", paths=["docs/*.md"]),
        ]),
    )
    assert phases(await runner(a, driver, data_dir, store).run()) == ["success", "success"]
    b = spec(
        "task-b",
        RestoreWorkspaceStep(dest_dir="."),
        RunStep(command="cat dist/bin/tool; test ! -e dist/tmp.o; mkdir -p out; echo B > out/b.txt"),
        SaveToWorkspaceStep(contents=[SaveContent(source_dir="out", dest_dir="from-b", paths=["*.txt"])]),
        workspace_operations=[WorkspaceOperation(task_id="task-a", step=1)],
    )
    status = await runner(b, driver, data_dir, store).run()
    assert phases(status) == ["success", "success", "success"], step_log(data_dir, "task-b", 1)
    assert step_log(data_dir, "task-b", 1) == "A\n"
    ws = "/tmp/ws" if driver.name == "docker" else "ws"  # absolute paths are host paths on the host driver
    c = spec(
        "task-c",
        RestoreWorkspaceStep(dest_dir=ws),
        RunStep(command="cd ${WS}; find . -type f | sort; cat from-b/b.txt"),
        workspace_operations=[WorkspaceOperation(task_id="task-a", step=1), WorkspaceOperation(task_id="task-b", step=2)],
        environment={"WS": ws},
    )
    status = await runner(c, driver, data_dir, store).run()
    assert phases(status) == ["success", "success"], step_log(data_dir, "task-c", 0)
    assert step_log(data_dir, "task-c", 1).splitlines() == [
        "./dist/bin/tool", "./docs-out/docs/x.md", "./from-b/b.txt", "B",
    ]


async def test_cache_miss_then_hit_then_prefix_restore(driver: Driver, data_dir: Path, store: LocalArchiveStore) -> None:
    save = SaveCacheStep(key='deps-{{ md5sum "lock" }}', contents=[SaveContent(source_dir="cache", paths=["**"])])
    produce = RunStep(command="echo v1 > lock; mkdir -p cache; echo cached-$(cat lock) > cache/data")

    first = spec("t-cache1", produce, save, cache_prefix="proj")
    assert phases(await runner(first, driver, data_dir, store).run()) == ["success", "success"]
    log1 = step_log(data_dir, "t-cache1", 1)
    assert "no cache available for key" in log1 and "Saving." in log1

    second = spec("t-cache2", produce, save, cache_prefix="proj")
    assert phases(await runner(second, driver, data_dir, store).run()) == ["success", "success"]
    assert "already exists" in step_log(data_dir, "t-cache2", 1)

    restore = spec(
        "t-cache3",
        RestoreCacheStep(keys=["nothing-", 'deps-{{ md5sum "lock" }}', "deps-"], dest_dir="restored"),
        RunStep(command="cat restored/data"),
        cache_prefix="proj",
    )
    status = await runner(restore, driver, data_dir, store).run()
    # md5sum of a missing file fails the key: the step fails with a clear message.
    assert phases(status) == ["failed", "notstarted"]
    assert "lock" in step_log(data_dir, "t-cache3", 0)

    by_prefix = spec(
        "t-cache4",
        RestoreCacheStep(keys=["nothing-", "deps-"], dest_dir="restored"),
        RunStep(command="cat restored/data"),
        cache_prefix="proj",
    )
    status = await runner(by_prefix, driver, data_dir, store).run()
    assert phases(status) == ["success", "success"]
    log = step_log(data_dir, "t-cache4", 0)
    assert 'no cache available for key "nothing-"' in log and 'restoring cache with key "deps-"' in log
    assert step_log(data_dir, "t-cache4", 1) == "cached-v1\n"

    other_project = spec("t-cache5", RestoreCacheStep(keys=["deps-"]), cache_prefix="other")
    status = await runner(other_project, driver, data_dir, store).run()
    assert phases(status) == ["success"]
    assert 'no cache available for key "deps-"' in step_log(data_dir, "t-cache5", 0)


async def test_malicious_workspace_archive_is_rejected_with_the_entry_named(
    driver: Driver, data_dir: Path, store: LocalArchiveStore
) -> None:
    bad = io.BytesIO()
    with tarfile.open(fileobj=bad, mode="w") as tar:
        link = tarfile.TarInfo("escape")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc"
        tar.addfile(link)
        info = tarfile.TarInfo("escape/evil")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    archive = data_dir / "bad.tar"
    archive.write_bytes(bad.getvalue())
    await store.put_workspace("tampered", 0, archive)
    task = spec("t-bad", RestoreWorkspaceStep(dest_dir="."), workspace_operations=[WorkspaceOperation(task_id="tampered", step=0)])
    status = await runner(task, driver, data_dir, store).run()
    assert phases(status) == ["failed"]
    assert "unsafe archive entry 'escape/evil': path goes through a symbolic link" in step_log(data_dir, "t-bad", 0)


async def test_workspace_keeps_links_to_outside_as_links(driver: Driver, data_dir: Path, store: LocalArchiveStore) -> None:
    """A virtualenv-like link to an absolute path survives a workspace round trip, as a link only."""
    save = spec(
        "t-links-save",
        RunStep(command="mkdir -p out; ln -s /etc/passwd out/pw; echo ok > out/ok"),
        SaveToWorkspaceStep(contents=[SaveContent(source_dir="out", dest_dir="ws", paths=["**"])]),
    )
    assert phases(await runner(save, driver, data_dir, store).run()) == ["success", "success"]
    restore = spec(
        "t-links-restore",
        RestoreWorkspaceStep(dest_dir="."),
        RunStep(command="readlink ws/pw; cat ws/ok"),
        workspace_operations=[WorkspaceOperation(task_id="t-links-save", step=1)],
    )
    status = await runner(restore, driver, data_dir, store).run()
    assert phases(status) == ["success", "success"], step_log(data_dir, "t-links-restore", 0)
    assert step_log(data_dir, "t-links-restore", 1).replace("\r\n", "\n") == "/etc/passwd\nok\n"


async def test_a_step_leaving_a_background_process_still_finishes(
    driver: Driver, data_dir: Path, store: LocalArchiveStore
) -> None:
    task = spec("t-bg", RunStep(command="sleep 60 & echo started-server"), RunStep(command="echo next"))
    status = await asyncio.wait_for(runner(task, driver, data_dir, store).run(), 30)
    assert phases(status) == ["success", "success"]
    assert step_log(data_dir, "t-bg", 0).strip() == "started-server"
