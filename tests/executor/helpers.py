"""Small builders for executor tests."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, NamedTuple

from agola.services.executor.drivers.base import Driver
from agola.services.executor.store import ArchiveStore
from agola.services.executor.taskrunner import TaskRunner
from agola.types.runservice import Container, ExecutorTaskSpecData, Step
from tests.support.services import BUSYBOX_IMAGE

# Unique per test process: several test runs may share the Docker engine, and each one removes
# the pods of its own executor id when a test ends.
EXECUTOR_ID = f"test-executor-{uuid.uuid4().hex[:8]}"


class Task(NamedTuple):
    """An executor task as the runservice sends it: its id and its spec data."""

    task_id: str
    data: ExecutorTaskSpecData


def spec(task_id: str, *steps: Step, image: str = BUSYBOX_IMAGE, containers: list[Container] | None = None, **kw: Any) -> Task:
    return Task(task_id, ExecutorTaskSpecData(containers=containers or [Container(image=image)], steps=list(steps), **kw))


def runner(task: Task, driver: Driver, data_dir: Path, store: ArchiveStore, **kw: Any) -> TaskRunner:
    return TaskRunner(task.task_id, task.data, driver, executor_id=EXECUTOR_ID, data_dir=data_dir, store=store, **kw)


def step_log(data_dir: Path, task_id: str, index: int) -> str:
    return (data_dir / "tasks" / task_id / "logs" / "steps" / f"{index}.log").read_text(errors="replace")


def setup_log(data_dir: Path, task_id: str) -> str:
    return (data_dir / "tasks" / task_id / "logs" / "setup.log").read_text(errors="replace")


def phases(status: Any) -> list[str]:
    return [s.phase.value for s in status.steps]
