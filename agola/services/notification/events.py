"""From run events to stored deliveries.

``RunEventHandler.handle`` reads the run of an event and stores, durably, what must be sent: a
run webhook (when ``webhookURL`` is set) and, for a project run with a commit, its commit status
when that changes (pending, then success/failure/error). Sending is the sender's job: nothing here
waits for a receiver or a forge, and nothing here is on the runs' path (the runservice emits
events whether anyone listens or not).

``RunEventFollower`` is the leader's loop: it holds the ``locks/runevents`` mutex (other
instances wait in line for it), follows the runservice's event stream and hands every event to the
handler; it reconnects with backoff when the stream breaks. The runservice does not replay
events: on every (re)connection the follower catches up on the runs last notified in progress and
the active runs, notifying their current state when it changed (``RunStates`` in ``store.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Callable

from agola.errors import AgolaError, NotExist
from agola.forges.base import CommitState
from agola.roleclients.base import NO_TIMEOUT
from agola.roleclients.runservice import RunserviceClient
from agola.services.notification.forgestatus import CommitStatuses
from agola.services.notification.messages import (
    DESCRIPTIONS,
    Owner,
    commit_state,
    encode_payload,
    run_owner,
    run_url,
    status_context,
    webhook_payload,
)
from agola.services.notification.store import DeliveryStore, RunStates
from agola.storage.coord.base import Coordination, Mutex
from agola.types.notification import CommitStatusMessage, DeliveryKind, OwnerType
from agola.types.runservice import Run, RunEvent, RunPhase, RunResult
from agola.util.backoff import Backoff
from agola.util.log import get_logger

log = get_logger(__name__)

RUN_EVENTS_LOCK = "locks/runevents"
LOCK_TTL = 10.0
# Events whose deliveries are remembered as stored (a retried event stores nothing twice).
REMEMBERED_EVENTS = 4096
# Page size of the catch-up's run listings.
PAGE = 50


class RunEventHandler:
    def __init__(self, runservice: RunserviceClient, store: DeliveryStore, *, statuses: CommitStatuses | None,
                 installation_id: str, web_exposed_url: str, webhooks: bool,
                 on_new: Callable[[], None] = lambda: None) -> None:
        self.rs = runservice
        self.store = store
        self.statuses = statuses
        self.installation_id = installation_id
        self.web_exposed_url = web_exposed_url
        self.webhooks = webhooks
        self.on_new = on_new
        self.states = RunStates(store.coord)
        # (event sequence, kind) of the deliveries stored lately: a retried event adds no duplicate.
        self._stored: OrderedDict[tuple[str, DeliveryKind], None] = OrderedDict()

    async def handle(self, event: RunEvent) -> int:
        """Store the deliveries of one event; how many were stored. Idempotent: handling an event
        again (a retry after a failure halfway) stores nothing twice."""
        try:
            resp = await self.rs.get_run(event.run_id)
        except NotExist:
            log.info("run event of a run that is gone", run=event.run_id)
            return 0
        run = resp.run
        owner = run_owner(run)
        if owner is None or not (self.webhooks or (self.statuses is not None and owner.type is OwnerType.PROJECT)):
            return 0  # nothing to tell about this run
        last = await self.states.get(run.id)
        if last is not None and (last.phase, last.result) == (event.phase, event.result):
            return 0  # seen already (a catch-up, then the same change on the stream)
        previous = commit_state(RunPhase(last.phase), RunResult(last.result)) if last is not None else None
        added = 0
        if self.webhooks and self._first_time(event, DeliveryKind.RUN_WEBHOOK):
            body = webhook_payload(run, resp.run_config, event.phase, event.result)
            await self.store.add(DeliveryKind.RUN_WEBHOOK, owner.type, owner.id, run_id=run.id,
                                 payload=encode_payload(body).decode())
            self._done(event, DeliveryKind.RUN_WEBHOOK)
            added += 1
        msg = await self._commit_status(event, run, owner, previous)
        if msg is not None and self._first_time(event, DeliveryKind.COMMIT_STATUS):
            await self.store.add(DeliveryKind.COMMIT_STATUS, owner.type, owner.id, run_id=run.id, commit_status=msg)
            self._done(event, DeliveryKind.COMMIT_STATUS)
            added += 1
        await self.states.set(run.id, event.phase, event.result)
        if added:
            self.on_new()
        return added

    async def _commit_status(self, event: RunEvent, run: Run, owner: Owner,
                             previous: CommitState | None) -> CommitStatusMessage | None:
        """The status to set, None when it is the one set last (queued, then running: pending)."""
        sha = run.annotations.get("commit_sha", "")
        state = commit_state(event.phase, event.result)
        if (self.statuses is None or owner.type is not OwnerType.PROJECT or not sha or state is None
                or state == previous):
            return None
        try:
            name = await self.statuses.project_name(owner.id)
        except NotExist:
            log.info("commit status of a deleted project not set", project=owner.id, run=run.id)
            return None
        return CommitStatusMessage(
            project_id=owner.id, commit_sha=sha, state=str(state),
            context=status_context(self.installation_id, name, run.name),
            description=DESCRIPTIONS[state], target_url=run_url(self.web_exposed_url, run.id))

    def _first_time(self, event: RunEvent, kind: DeliveryKind) -> bool:
        return (event.sequence, kind) not in self._stored

    def _done(self, event: RunEvent, kind: DeliveryKind) -> None:
        self._stored[(event.sequence, kind)] = None
        while len(self._stored) > REMEMBERED_EVENTS:
            self._stored.popitem(last=False)


class RunEventFollower:
    """Follows run events while holding the ``locks/runevents`` mutex (one leader at a time)."""

    def __init__(self, coord: Coordination, runservice: RunserviceClient, handler: RunEventHandler, *,
                 max_backoff: float = 5.0) -> None:
        self.coord = coord
        self.rs = runservice
        self.handler = handler
        self.max_backoff = max_backoff
        self.leading = asyncio.Event()
        self.connected = asyncio.Event()

    async def run(self) -> None:
        backoff = Backoff(0.2, self.max_backoff)
        while True:
            mutex = self.coord.mutex(RUN_EVENTS_LOCK, ttl=LOCK_TTL)
            try:
                await mutex.lock()
            except asyncio.CancelledError:
                raise
            except AgolaError as exc:
                log.info("notification: cannot take the run events lock", error=exc.message)
                await asyncio.sleep(backoff.next())
                continue
            self.leading.set()
            log.info("notification: leading, following run events")
            try:
                await self._follow_while_leading(mutex)
            finally:
                self.leading.clear()
                self.connected.clear()
                with contextlib.suppress(Exception):
                    await mutex.unlock()

    async def _follow_while_leading(self, mutex: Mutex) -> None:
        follow = asyncio.create_task(self._follow(), name="notification-run-events")
        try:
            while not follow.done():
                await asyncio.wait([follow], timeout=1.0)
                if mutex.lost:
                    # Another instance may lead now: stop before both store the same events.
                    log.warning("notification: run events lock lost, stepping down")
                    break
        finally:
            follow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follow

    async def _follow(self) -> None:
        backoff = Backoff(0.2, self.max_backoff)
        while True:
            try:
                # The request itself rather than RunserviceClient.run_events(): its answer (headers)
                # means the runservice watches events for us, so ``connected`` is exact.
                resp = await self.rs.request("GET", "/runs/events", timeout=NO_TIMEOUT)
                async with resp:
                    backoff.reset()
                    # Events are not replayed: catch up on what changed while nobody followed
                    # (the stream is open already, so nothing is missed in between).
                    await self.catch_up()
                    self.connected.set()
                    async for line in resp.content:
                        if line.startswith(b"data: "):
                            await self._handle(RunEvent.from_json(line[6:].strip()))
                log.info("notification: run events stream ended, reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect whatever broke the stream
                log.info("notification: run events stream broken", error=str(exc))
            self.connected.clear()
            await asyncio.sleep(backoff.next())

    async def catch_up(self) -> int:
        """Handle the current state of the runs last notified in progress and of the active runs;
        how many had changed."""
        run_ids = set(await self.handler.states.unfinished())
        for phase in (RunPhase.QUEUED, RunPhase.RUNNING):
            start = ""
            while True:
                runs, _ = await self.rs.list_runs(phases=[phase.value], start=start, limit=PAGE, asc=True)
                run_ids.update(r.id for r in runs)
                if len(runs) < PAGE:
                    break
                start = runs[-1].id
        changed = 0
        for run_id in sorted(run_ids):
            try:
                run = (await self.rs.get_run(run_id)).run
            except NotExist:
                continue
            event = RunEvent(sequence=f"catchup-{run.id}-{run.phase}-{run.result}", run_id=run.id,
                             phase=run.phase, result=run.result)
            if await self._handle(event):
                changed += 1
        if changed:
            log.info("notification: caught up on runs changed while not following", runs=changed)
        return changed

    async def _handle(self, event: RunEvent) -> int:
        backoff = Backoff(0.2, 2.0)
        for attempt in range(3):
            try:
                return await self.handler.handle(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one bad event must not stop the others
                log.warning("notification: run event not handled", run=event.run_id, phase=str(event.phase),
                            attempt=attempt + 1, error=str(exc))
                await asyncio.sleep(backoff.next())
        return 0
