"""The runservice's background jobs, each a small class with ``name``, ``lock`` and ``run_once()``,
run by ``agola.util.loops.LoopRunner``."""

from agola.services.runservice.loops.archiver import FinishedRunsArchiver
from agola.services.runservice.loops.expiry import CacheCleaner, WorkspaceCleaner
from agola.services.runservice.loops.fetcher import Fetcher
from agola.services.runservice.loops.scheduler import ExecutorTasksCleaner, RunsScheduler, TaskUpdater

__all__ = [
    "CacheCleaner",
    "ExecutorTasksCleaner",
    "Fetcher",
    "FinishedRunsArchiver",
    "RunsScheduler",
    "TaskUpdater",
    "WorkspaceCleaner",
]
