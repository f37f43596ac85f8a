"""Fetching logs and workspace archives of finished tasks into object storage (§1.6, §3.9)."""

from __future__ import annotations

import attrs
import pytest

from agola.errors import BadRequest, NotExist
from agola.services.runservice.logic import archivable
from agola.services.runservice.logic.fetching import (
    Fetch,
    FetchKind,
    cache_object_path,
    fetch_finished,
    log_archived,
    log_run_marker_path,
    log_selector,
    mark_archived,
    mark_fetched,
    pending_fetches,
)
from agola.types.runservice import ExecutorTaskPhase as P
from agola.types.runservice import FetchPhase, RunPhase
from tests.runservice.builders import World, task


def test_finished_tasks_are_fetched_then_the_run_is_archivable() -> None:
    w = World.of(task("a", steps=1, workspace=True), auto_fetch=False)
    w.schedule()
    w.report("a", P.RUNNING)
    assert pending_fetches(w.run) == []  # nothing while running
    w.report("a", P.SUCCESS)
    w.settle()
    assert w.run.phase is RunPhase.FINISHED and not archivable(w.run)
    fetches = pending_fetches(w.run)
    assert [(f.kind.value, f.step, f.object_path) for f in fetches] == [
        ("log", None, "logs/a/data/setup.log"),
        ("log", 0, "logs/a/data/steps/0.log"),
        ("log", 1, "logs/a/data/steps/1.log"),
        ("archive", 1, "workspacearchives/a/data/1.tar"),
    ]
    run = w.run
    for f in fetches:
        assert not fetch_finished(run.tasks["a"])
        run = mark_fetched(run, f)
    assert fetch_finished(run.tasks["a"]) and pending_fetches(run) == []
    assert mark_archived(run).archived
    with pytest.raises(BadRequest, match="cannot be archived yet"):
        mark_archived(w.run)
    assert log_run_marker_path("a", "run1") == "logs/a/runs/run1"


def test_log_requests_are_validated_and_setup_uses_its_own_phase() -> None:
    w = World.of(task("a", steps=2))
    t = w.run.tasks["a"]
    with pytest.raises(BadRequest, match="exactly one of setup or step"):
        log_selector(t, setup=True, step=0)
    with pytest.raises(BadRequest, match="exactly one of setup or step"):
        log_selector(t, setup=False, step=None)
    with pytest.raises(NotExist, match="no such step 2"):
        log_selector(t, setup=False, step=2)
    assert log_selector(t, setup=True, step=None) is None
    # quirk 4: the setup log's own phase decides, not step 0's
    t = attrs.evolve(t, setup_step=attrs.evolve(t.setup_step, log_phase=FetchPhase.FINISHED))
    assert log_archived(t, None) and not log_archived(t, 0)


def test_cache_keys() -> None:
    assert cache_object_path("p1-go-abc") == "caches/p1-go-abc.tar"
    with pytest.raises(BadRequest, match="empty"):
        cache_object_path("")
    with pytest.raises(BadRequest, match="too long"):
        cache_object_path("k" * 201)
    assert Fetch("r", "t", FetchKind.ARCHIVE, 3).object_path == "workspacearchives/t/data/3.tar"
