"""The scheduler role (spec §6.11): starts queued runs and drives approvals.

* Start: for every run group with queued runs, the oldest queued run (run ids are ordered) is
  started when fewer than ``scheduler.runsPerGroupLimit`` runs of that group are running (default
  1: one branch/tag/PR of a project or user builds one commit at a time, FIFO). The check and the
  start are one optimistic transaction on the change group ``sha256("changegroup-" + group)``, so
  two schedulers never start more than the limit.
* Approve: a running run's task waiting for approval whose ``approvers`` annotation lists someone
  is approved in the runservice (change group ``sha256("approval-" + runID)``).

``run_once()`` does one pass of both; the role runs it when the runservice's run events stream
signals a change (push), and every ``interval`` seconds as a safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from typing import Any, TypeVar

from agola.config import Config
from agola.errors import BadRequest, Conflict, NotExist
from agola.roleclients.runservice import RunserviceClient
from agola.services.role import Role
from agola.services.runservice.logic.actions import tasks_to_approve
from agola.services.runservice.logic.groups import approval_change_group
from agola.services.runservice.logic.run_queue import group_change_group, group_has_room
from agola.types.runservice import Run, RunPhase
from agola.util.aio import cancel_and_wait
from agola.util.backoff import Backoff
from agola.util.log import get_logger
from agola.util.loops import LoopRunner

log = get_logger(__name__)

T = TypeVar("T")
# A listing of a group's running runs: the revision listed at, their ids, the group's token.
Listing = tuple[int, set[str], str]

PAGE = 25
# Runs remembered as past queued (their last run event's revision); enough for every run started
# between two passes.
SEEN_RUNS = 1024
# Groups a pass woken by a queued run lists the running runs of along with the queued runs (not
# after): the groups where this scheduler started runs last, the likeliest to have the new one.
PREFETCH_GROUPS = 4


class Scheduler:
    """The scheduling logic over a runservice client (no loop of its own)."""

    name = "scheduler"

    def __init__(self, runservice: RunserviceClient, runs_per_group_limit: int = 1, *,
                 approve_interval: float = 0.0) -> None:
        """``approve_interval``: a pass looks for approvals only when that many seconds passed
        since the last look (0: every pass)."""
        self.rs = runservice
        self.limit = max(1, runs_per_group_limit)
        self.approve_interval = approve_interval
        self._approved_at: float | None = None
        # group -> runs started here that the listings may not show as running yet
        self._started: dict[str, set[str]] = {}
        # The revision of the last run event seen: listings wait until the readdb reached it, so
        # a pass woken by an event sees the run it announced (no wait for the settle pass).
        self.min_revision = 0
        # run id -> revision of the last event seen of it once past queued: a listing at that
        # revision or later shows the run as it is (no read of the run to know it).
        self._past_queued: OrderedDict[str, int] = OrderedDict()
        self._recent_groups: OrderedDict[str, None] = OrderedDict()  # where runs were started last
        self._queued_event = False  # a run was queued since the last pass began
        # Runs seen finished on the events stream: a run started here and over needs no read.
        self._finished: OrderedDict[str, None] = OrderedDict()

    def run_event(self, run_id: str, phase: RunPhase, revision: int) -> None:
        """A run event seen on the runservice's stream (revision 0: the server sent none)."""
        self.min_revision = max(self.min_revision, revision)
        if phase == RunPhase.QUEUED:
            self._queued_event = True
        if revision > 0 and phase != RunPhase.QUEUED:  # a run never goes back to queued
            _remember(self._past_queued, run_id, revision)
        if phase.is_finished:
            _remember(self._finished, run_id, None)

    def _listed_as_is(self, run_id: str, listed_at: int) -> bool:
        """Whether a listing at ``listed_at`` or later shows ``run_id`` past queued, as it is."""
        seen = self._past_queued.get(run_id)
        return seen is not None and seen <= listed_at

    async def _all(self, phase: RunPhase, groups: list[str] | None = None) -> list[dict[str, Any]]:
        """The runs in ``phase``, as JSON objects: the passes look at a field or two of each (a
        decode of every run, its tasks and steps, was most of a pass's cost with 100 runs)."""
        out: list[dict[str, Any]] = []
        start = ""
        while True:
            runs, _ = await self.rs.list_runs_json(phases=[phase.value], groups=groups, start=start, limit=PAGE,
                                                   asc=True, min_revision=self.min_revision)
            out.extend(runs)
            if len(runs) < PAGE:
                return out
            start = str(runs[-1]["id"])

    async def queued_groups(self) -> list[str]:
        """Groups with queued runs, in the order of their oldest queued run."""
        return list(await self._queued_by_group())

    async def _queued_by_group(self) -> dict[str, list[str]]:
        """Queued run ids (oldest first) by group, groups in the order of their oldest run."""
        groups: dict[str, list[str]] = {}
        for run in await self._all(RunPhase.QUEUED):
            groups.setdefault(str(run.get("group", "")), []).append(str(run["id"]))
        return groups

    async def _running(self, group: str) -> Listing:
        """The revision listed at, the ids of the running runs of ``group`` and the token of its
        change group (taken before the listing: it protects what the listing shows)."""
        listed_at = self.min_revision
        running, token = await self.rs.list_runs_json(phases=[RunPhase.RUNNING.value], groups=[group],
                                                      limit=self.limit + len(self._started.get(group, ())),
                                                      change_groups=[group_change_group(group)],
                                                      min_revision=listed_at)
        return listed_at, {str(r["id"]) for r in running}, token

    async def schedule_group(self, group: str, queued: list[str] | None = None,
                             listing: Listing | None = None) -> Run | None:
        """Start the oldest queued run of ``group`` if the group has room; the started run or None.
        ``listing``: ``_running(group)`` already asked for in this pass.

        Listings come from the runservice's readdb, which follows writes shortly after: a run
        this scheduler just started may still be listed as queued, and not yet as running. Such
        runs are remembered (``_started``) until a listing shows them running, or shows them as
        they are (a run event of theirs at or below the listing's revision), or a consistent read
        finds them over, so the limit holds even while the readdb lags.
        """
        pending = self._started.setdefault(group, set())
        listed_at, running, token = listing if listing is not None else await self._running(group)
        busy = set(running)
        for run_id in sorted(pending):
            # Listed by now, or the listing shows it as it is (not running), or already over.
            if (run_id in busy or self._listed_as_is(run_id, listed_at) or run_id in self._finished
                    or await self._phase(run_id) != RunPhase.RUNNING):
                pending.discard(run_id)
            else:
                busy.add(run_id)
        if not group_has_room(len(busy), self.limit):
            return None
        candidate = await self._oldest_queued(group, len(pending) + 1, queued, pending)
        if candidate is None:
            return None
        try:
            started = await self.rs.start_run(candidate, token)
        except (Conflict, BadRequest) as exc:
            # Someone else changed the group (or the run) meanwhile: the next pass decides again.
            log.debug("run not started", run=candidate, error=exc.message)
            return None
        pending.add(started.id)
        self._recent_groups[group] = None
        self._recent_groups.move_to_end(group)
        while len(self._recent_groups) > PREFETCH_GROUPS:
            self._recent_groups.popitem(last=False)
        log.info("run started", run=started.id, group=group)
        return started

    async def _phase(self, run_id: str) -> RunPhase | None:
        try:
            return (await self.rs.get_run(run_id)).run.phase
        except NotExist:
            return None

    async def _oldest_queued(self, group: str, lookahead: int, listed: list[str] | None,
                             pending: set[str]) -> str | None:
        """``listed``: the group's queued run ids as this pass listed them (no listing again).

        The listing may still show as queued a run started here (``pending``) or one whose later
        run event came after it: those are skipped. Another change the listing missed makes the
        start fail, and its run event wakes another pass."""
        if listed is None:
            queued, _ = await self.rs.list_runs_json(phases=[RunPhase.QUEUED.value], groups=[group],
                                                     limit=max(lookahead, PAGE), asc=True,
                                                     min_revision=self.min_revision)
            listed = [str(run["id"]) for run in queued]
        for run_id in listed:
            if run_id not in pending and run_id not in self._past_queued:
                return run_id
        return None

    async def schedule(self) -> list[Run]:
        started = []
        prefetch: dict[str, asyncio.Task[Listing]] = {}
        if self._queued_event:  # woken by a new run: its group is likely one of the last ones
            self._queued_event = False
            prefetch = {g: asyncio.create_task(self._running(g)) for g in self._recent_groups}
        try:
            for group, queued in (await self._queued_by_group()).items():
                # One start per transaction (each consumes the group's change group token). The
                # first uses the queued runs just listed; the next ones list again.
                for attempt in range(self.limit):
                    listing = await prefetch.pop(group) if attempt == 0 and group in prefetch else None
                    run = await self.schedule_group(group, queued if attempt == 0 else None, listing)
                    if run is None:
                        break
                    started.append(run)
        finally:
            for task in prefetch.values():
                task.cancel()
            await asyncio.gather(*prefetch.values(), return_exceptions=True)
        return started

    async def approve(self) -> list[tuple[str, str]]:
        """Approve the waiting tasks someone approved; the (run id, task id) pairs approved."""
        done = []
        for listed in await self._all(RunPhase.RUNNING):
            # The listing may lag behind approvals recorded a moment ago: read the run itself, if
            # the listing shows a task waiting approval (most runs have none: no read per run).
            tasks = listed.get("tasks") or {}
            if not any(t.get("waiting_approval") and not t.get("approved") for t in tasks.values()):
                continue
            try:
                run = (await self.rs.get_run(str(listed["id"]))).run
            except NotExist:
                continue
            for task_id in tasks_to_approve(run):
                try:
                    fresh = await self.rs.get_run(run.id, [approval_change_group(run.id)])
                    await self.rs.approve_task(run.id, task_id, fresh.change_groups_update_token)
                except (Conflict, BadRequest) as exc:
                    log.debug("task not approved", run=run.id, task=task_id, error=exc.message)
                    continue
                log.info("task approved", run=run.id, task=task_id)
                done.append((run.id, task_id))
        return done

    async def run_once(self) -> None:
        await self.schedule()
        now = time.monotonic()
        if self._approved_at is None or now - self._approved_at >= self.approve_interval:
            self._approved_at = now
            await self.approve()


def _remember(seen: OrderedDict[str, T], run_id: str, value: T) -> None:
    seen[run_id] = value
    seen.move_to_end(run_id)
    while len(seen) > SEEN_RUNS:
        seen.popitem(last=False)


class SchedulerRole(Role):
    """Runs ``Scheduler.run_once()`` when pushed, with a periodic pass as the safety net.

    A background task follows the runservice's run events stream (``/runs/events``): an event of
    a run queued or finished (a finished run frees a slot in its group) wakes the loop
    (``agola.util.loops.LoopRunner``), so a burst of events causes at most one extra pass at a
    time. The readdb the passes list from follows the same writes a moment later: each event
    carries its coordination revision and the pass lists at that revision (``minrevision``), so
    it sees the run the event announced; one more pass ``settle`` seconds later stays as a margin. When the stream breaks (runservice
    restarting) it reconnects with backoff and wakes a pass on every (re)connection, as events
    are not replayed. Approvals emit no run event: they are picked up by the periodic pass. The
    events of a run still running (started, its result decided) wake no pass: they free no slot,
    and the listings of such a pass only competed with the run's first task for the CPU.
    """

    name = "scheduler"

    def __init__(self, config: Config, *, interval: float = 2.0, settle: float = 0.3,
                 max_backoff: float = 5.0) -> None:
        super().__init__(config)
        self.interval = interval
        self.settle = settle
        self.max_backoff = max_backoff
        self.client: RunserviceClient | None = None
        self.scheduler: Scheduler | None = None
        self._runner: LoopRunner | None = None
        self._events: asyncio.Task[None] | None = None

    async def start(self) -> None:
        section = self.config.scheduler
        self.client = RunserviceClient(
            section.runservice_url, token=self.config.api_token_for("runservice", caller=self.name))
        # Approvals emit no run event: the periodic pass looks for them, not every woken pass too
        # (a look lists every running run).
        self.scheduler = Scheduler(self.client, section.runs_per_group_limit, approve_interval=self.interval)
        self._runner = LoopRunner(self.scheduler, self.interval, follow_up=self.settle, max_backoff=self.max_backoff)
        self._runner.start()  # a first pass right after start
        self._events = asyncio.create_task(self._follow_events(), name="scheduler-run-events")

    def wake(self) -> None:
        """Ask for a pass as soon as the current one (if any) is over."""
        if self._runner is not None:
            self._runner.wake()

    async def run_once(self) -> None:
        assert self.scheduler is not None, "start() first"
        await self.scheduler.run_once()

    async def _follow_events(self) -> None:
        assert self.client is not None
        backoff = Backoff(0.2, self.max_backoff)
        while True:
            try:
                stream = self.client.run_events_at()
                async with contextlib.aclosing(stream):
                    connected = False
                    async for revision, event in stream:
                        if not connected:
                            connected = True
                            backoff.reset()
                        log.debug("run event", run=event.run_id, phase=str(event.phase), revision=revision)
                        if self.scheduler is not None:
                            self.scheduler.run_event(event.run_id, event.phase, revision)
                        if event.phase is not RunPhase.RUNNING:  # a start (or a result) frees no slot
                            self.wake()
                log.info("scheduler: run events stream ended, reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the periodic pass covers us meanwhile
                log.info("scheduler: run events stream broken", error=str(exc))
            await asyncio.sleep(backoff.next())
            # Events are not replayed: what happened while disconnected needs a pass.
            self.wake()

    async def stop(self) -> None:
        events, self._events = self._events, None
        if events is not None:
            await cancel_and_wait([events])
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.stop()
        if self.client is not None:
            await self.client.close()
            self.client = None
