"""Where the runservice keeps its state (spec §1.5, §1.6).

* Active runs, executors and executor tasks live in coordination under ``scheduler/`` (values are
  the wire JSON; executor tasks without their spec data).
* Run configs, run counters and finished (archived) runs live in the datamanager (datatypes
  ``runconfig``, ``runcounter``, ``run``; object storage base path ``rundata``).

Every run write is an atomic compare-and-put on the run key's mod revision (``put_run``), together
with the run event key when the phase or result changed, and the run-level change group keys when
the writer holds a change groups update token. A lost race raises ``Conflict``: callers re-read.

Bursts of run creations: inside one process, the creations of one root group (a project or a
user) queue up and the counters and run configs of every creation waiting (up to ``BATCH``) are
written in one WAL; increments of one sequence (run ids, run events) are batched the same way
(``agola.util.aio.BatchingQueue``). So no creation loses a compare-and-swap to a sibling and a burst
costs a few writes; races with other runservice instances are retried with jittered backoff until
``conflict_deadline`` seconds have passed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Generic, TypeVar

import attrs

from agola.errors import BadRequest, Conflict, NotExist
from agola.services.runservice.logic.groups import counter_change_group, root_group_id
from agola.storage.coord.base import Compare, Coordination, Delete, KeyValue, Op, Put
from agola.storage.coord.sequence import next_sequences
from agola.storage.datamanager import (
    Action,
    DataManager,
    disable_maintenance,
    enable_maintenance,
    is_maintenance_enabled,
)
from agola.types.runservice import Executor, ExecutorTask, Run, RunConfig, RunEvent
from agola.util.aio import BatchingQueue
from agola.util.backoff import Backoff

T = TypeVar("T")

SCHEDULER = "scheduler/"
RUNS_PREFIX = "scheduler/runs/"
EXECUTORS_PREFIX = "scheduler/executors/"
TASKS_PREFIX = "scheduler/tasks/"
CHANGEGROUPS_PREFIX = "scheduler/changegroups/"
RUN_SEQUENCE_KEY = "scheduler/runsequence"
RUN_EVENTS_KEY = "scheduler/runevents"
RUN_EVENT_SEQUENCE_KEY = "scheduler/runeventsequence"
LOCKS_PREFIX = "scheduler/locks/"

DATA_BASE_PATH = "rundata"
DT_RUN = "run"
DT_RUNCONFIG = "runconfig"
DT_RUNCOUNTER = "runcounter"
DATATYPES = [DT_RUN, DT_RUNCONFIG, DT_RUNCOUNTER]

# How long a run creation or a sequence increment keeps retrying races lost to other instances.
CONFLICT_DEADLINE = 30.0
# Run configs written by one counter WAL, or values taken by one sequence write, at most.
BATCH = 32
# etcd refuses transactions of more than 128 operations by default.
TXN_MAX_TASKS = 64


def utcnow() -> datetime:
    return datetime.now(UTC)


def lock_key(name: str) -> str:
    return f"{LOCKS_PREFIX}{name}"


# --- run-level change groups (the runservice flavour of §3.2: kept in coordination) ----------


@attrs.frozen
class RunChangeGroupsToken:
    """``{"cur_revision", "change_groups_revisions"}`` base64 (std) JSON; "" = no token."""

    cur_revision: int
    change_groups_revisions: dict[str, int] = attrs.field(factory=dict)

    def encode(self) -> str:
        doc = {"cur_revision": self.cur_revision, "change_groups_revisions": self.change_groups_revisions}
        return base64.b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode("ascii")

    @classmethod
    def decode(cls, token: str) -> RunChangeGroupsToken | None:
        if not token:
            return None
        try:
            doc = json.loads(base64.b64decode(token.encode("ascii"), validate=True))
            revs = {str(k): int(v) for k, v in (doc.get("change_groups_revisions") or {}).items()}
            return cls(int(doc["cur_revision"]), revs)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise BadRequest("invalid change groups update token") from None


def _validate_change_group(name: str) -> None:
    if not name or "/" in name or len(name) > 256:
        raise BadRequest(f"invalid change group name {name!r}")


D = TypeVar("D")


class _Decoded(Generic[D]):
    """Values of one key prefix decoded once per mod revision (a revision names one value; the
    types are frozen and changed only through copies, so a decoded value is shared safely)."""

    def __init__(self, decode: Callable[[bytes], D]) -> None:
        self._decode = decode
        self._by_key: dict[str, tuple[int, D]] = {}

    def one(self, kv: KeyValue) -> D:
        hit = self._by_key.get(kv.key)
        if hit is not None and hit[0] == kv.mod_revision:
            return hit[1]
        value = self._decode(kv.value)
        self._by_key[kv.key] = (kv.mod_revision, value)
        return value

    def all(self, kvs: list[KeyValue]) -> list[D]:
        """Decode a full listing of the prefix; keys no longer listed are forgotten."""
        values = [self.one(kv) for kv in kvs]
        if len(self._by_key) > len(kvs):
            listed = {kv.key for kv in kvs}
            self._by_key = {k: v for k, v in self._by_key.items() if k in listed}
        return values


@attrs.frozen
class StoredRun:
    run: Run
    revision: int  # mod revision of the run key (0 = archived, not in coordination)


class RunStore:
    """Typed access to the runservice state in coordination and the datamanager."""

    def __init__(
        self, coord: Coordination, dm: DataManager, *, now: Callable[[], datetime] = utcnow,
        conflict_deadline: float = CONFLICT_DEADLINE,
    ) -> None:
        self.coord = coord
        self.dm = dm
        self.now = now
        self.conflict_deadline = conflict_deadline
        self._counters = BatchingQueue(self._write_counters, BATCH)  # by root group
        self._sequences = BatchingQueue(self._take_sequences, BATCH)  # by sequence key
        # Run configs are immutable: keep the recent ones (the scheduler reads them every pass).
        self._rc_cache: OrderedDict[str, RunConfig] = OrderedDict()
        self._rc_cache_size = 2048
        # Runs and executor tasks decoded at a mod revision (the scheduler lists them every pass).
        self._runs: _Decoded[Run] = _Decoded(Run.from_json)
        self._tasks: _Decoded[ExecutorTask] = _Decoded(ExecutorTask.from_json)

    # --- run ids and events ------------------------------------------------------------------

    async def _retrying(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt()`` again after each ``Conflict`` (a race lost to another instance), with
        jittered backoff, until ``conflict_deadline``; then the last ``Conflict`` names ``what``."""
        deadline = time.monotonic() + self.conflict_deadline
        backoff = Backoff(initial=0.005, maximum=0.25, jitter=0.5)
        while True:
            try:
                return await attempt()
            except Conflict as exc:
                if time.monotonic() >= deadline:
                    raise Conflict(f"{what}: still losing races after {self.conflict_deadline:g}s ({exc.message})") from None
            await asyncio.sleep(backoff.next())

    async def _take_sequences(self, key: str, callers: list[None]) -> list[str]:
        values = await self._retrying(f"sequence {key!r}", lambda: next_sequences(self.coord, key, len(callers)))
        return [str(v) for v in values]

    async def _next_sequence(self, key: str) -> str:
        return await self._sequences.submit(key, None)

    async def new_run_id(self) -> str:
        return await self._next_sequence(RUN_SEQUENCE_KEY)

    async def _event_op(self, run: Run) -> Put:
        seq = await self._next_sequence(RUN_EVENT_SEQUENCE_KEY)
        ev = RunEvent(sequence=seq, run_id=run.id, phase=run.phase, result=run.result)
        return Put(RUN_EVENTS_KEY, ev.to_json_bytes())

    # --- active runs --------------------------------------------------------------------------

    async def get_active_run(self, run_id: str) -> StoredRun | None:
        kv = await self.coord.get(RUNS_PREFIX + run_id)
        if kv is None:
            return None
        return StoredRun(self._runs.one(kv), kv.mod_revision)

    def decoded_run(self, kv: KeyValue) -> Run:
        """The run of a key-value of ``RUNS_PREFIX`` (a watch event's), decoded once per mod
        revision: the scheduler's next listing finds it decoded. ``ValueError`` if it is no run."""
        return self._runs.one(kv)

    async def list_active_runs(self) -> list[StoredRun]:
        rr = await self.coord.range(RUNS_PREFIX)
        return [StoredRun(run, kv.mod_revision) for kv, run in zip(rr.kvs, self._runs.all(rr.kvs), strict=True)]

    async def put_run(
        self,
        run: Run,
        revision: int,
        *,
        event: bool = False,
        token: RunChangeGroupsToken | None = None,
        compares: list[Compare] | None = None,
        extra: list[Op] | None = None,
    ) -> int:
        """Compare-and-put the run (``revision`` 0 = create), with ``extra`` operations under
        ``compares`` too. Returns the new mod revision."""
        key = RUNS_PREFIX + run.id
        compares = [Compare.mod(key, "==", revision) if revision else Compare.create(key, "==", 0), *(compares or [])]
        ops: list[Op] = [Put(key, run.to_json_bytes())]
        if token is not None:
            for name, rev in token.change_groups_revisions.items():
                _validate_change_group(name)
                cg = CHANGEGROUPS_PREFIX + name
                compares.append(Compare.mod(cg, "==", rev) if rev else Compare.create(cg, "==", 0))
                ops.append(Put(cg, b""))
        if event:
            ops.append(await self._event_op(run))
        ops.extend(extra or [])
        res = await self.coord.txn(compares, ops)
        if not res.succeeded:
            raise Conflict(f"run {run.id} was updated concurrently")
        return res.revision

    async def delete_active_run(self, run_id: str, revision: int) -> None:
        key = RUNS_PREFIX + run_id
        res = await self.coord.txn([Compare.mod(key, "==", revision)], [Delete(key)])
        if not res.succeeded:
            raise Conflict(f"run {run_id} was updated concurrently")

    # --- change groups ------------------------------------------------------------------------

    async def change_groups_token(self, names: list[str]) -> RunChangeGroupsToken:
        for name in names:
            _validate_change_group(name)
        rr = await self.coord.range(CHANGEGROUPS_PREFIX)
        revs = {kv.key[len(CHANGEGROUPS_PREFIX) :]: kv.mod_revision for kv in rr.kvs}
        return RunChangeGroupsToken(rr.revision, {n: revs.get(n, 0) for n in names})

    # --- archived runs, run configs, counters (datamanager) -----------------------------------

    async def get_archived_run(self, run_id: str) -> Run | None:
        try:
            return Run.from_json(await self.dm.read_object(DT_RUN, run_id))
        except NotExist:
            return None

    async def get_run(self, run_id: str) -> StoredRun | None:
        """The active run, else the archived one (revision 0)."""
        stored = await self.get_active_run(run_id)
        if stored is not None:
            return stored
        run = await self.get_archived_run(run_id)
        return StoredRun(run, 0) if run is not None else None

    async def get_run_config(self, run_id: str) -> RunConfig | None:
        rc = self._rc_cache.get(run_id)
        if rc is not None:
            self._rc_cache.move_to_end(run_id)
            return rc
        try:
            rc = RunConfig.from_json(await self.dm.read_object(DT_RUNCONFIG, run_id))
        except NotExist:
            return None
        self._rc_cache[run_id] = rc
        while len(self._rc_cache) > self._rc_cache_size:
            self._rc_cache.popitem(last=False)
        return rc

    async def archive_run(self, run: Run, revision: int) -> None:
        """Move a run (already marked archived) from coordination to the datamanager."""
        await self.dm.write_wal([Action.put(DT_RUN, run.id, run.to_json_bytes())])
        try:
            await self.delete_active_run(run.id, revision)
        except Conflict:
            pass  # someone else archived it (or it changed: the next pass archives it again)

    async def create_run(self, run: Run, rc: RunConfig) -> Run:
        """Save a new run: its counter and run config in a WAL guarded by the counter's change
        group (queued with the other creations of its root group), then the active run key with its
        creation event. Returns the run with its counter set."""
        counter = await self._counters.submit(root_group_id(run.group), rc)
        run = attrs.evolve(run, counter=counter, enqueue_time=self.now())
        await self.put_run(run, 0, event=True)
        return run

    async def _write_counters(self, root: str, rcs: list[RunConfig]) -> list[int]:
        first = await self._retrying(f"run creation in group {root}", lambda: self._take_counters(root, rcs))
        return [first + i for i in range(len(rcs))]

    async def _take_counters(self, root: str, rcs: list[RunConfig]) -> int:
        """One attempt: the next ``len(rcs)`` counters of ``root``, written with the run configs;
        returns the first. ``Conflict`` when another instance took the counter first."""
        token = await self.dm.get_change_groups_update_token([counter_change_group(root)])
        try:
            current = int(json.loads(await self.dm.read_object(DT_RUNCOUNTER, root)))
        except NotExist:
            current = 0
        await self.dm.write_wal(
            [Action.put(DT_RUNCOUNTER, root, json.dumps(current + len(rcs)).encode())]
            + [Action.put(DT_RUNCONFIG, rc.id, rc.to_json_bytes()) for rc in rcs],
            token,
        )
        return current + 1

    # --- executors ----------------------------------------------------------------------------

    async def get_executor(self, executor_id: str) -> Executor | None:
        kv = await self.coord.get(EXECUTORS_PREFIX + executor_id)
        return Executor.from_json(kv.value) if kv is not None else None

    async def list_executors(self) -> list[Executor]:
        rr = await self.coord.range(EXECUTORS_PREFIX)
        return [Executor.from_json(kv.value) for kv in rr.kvs]

    async def put_executor(self, executor: Executor) -> None:
        await self.coord.put(EXECUTORS_PREFIX + executor.id, executor.to_json_bytes())

    async def delete_executor(self, executor_id: str) -> bool:
        return await self.coord.delete(EXECUTORS_PREFIX + executor_id) > 0

    # --- executor tasks -----------------------------------------------------------------------

    async def get_executor_task(self, task_id: str) -> tuple[ExecutorTask, int] | None:
        kv = await self.coord.get(TASKS_PREFIX + task_id)
        if kv is None:
            return None
        return self._tasks.one(kv), kv.mod_revision

    async def list_executor_tasks(self) -> list[tuple[ExecutorTask, int]]:
        rr = await self.coord.range(TASKS_PREFIX)
        return [(et, kv.mod_revision) for kv, et in zip(rr.kvs, self._tasks.all(rr.kvs), strict=True)]

    async def create_executor_task(self, et: ExecutorTask) -> bool:
        """Create it unless it exists (id == run task id: one executor task per run task)."""
        key = TASKS_PREFIX + et.id
        res = await self.coord.txn([Compare.create(key, "==", 0)], [Put(key, et.to_json_bytes())])
        return res.succeeded

    async def create_executor_tasks(self, ets: list[ExecutorTask]) -> list[ExecutorTask]:
        """Create many (a few transactions, etcd's ops limit respected); returns those created."""
        created: list[ExecutorTask] = []
        for i in range(0, len(ets), TXN_MAX_TASKS):
            chunk = ets[i : i + TXN_MAX_TASKS]
            res = await self.coord.txn(
                [Compare.create(TASKS_PREFIX + et.id, "==", 0) for et in chunk],
                [Put(TASKS_PREFIX + et.id, et.to_json_bytes()) for et in chunk],
            )
            if res.succeeded:
                created.extend(chunk)
                continue
            for et in chunk:  # some exist already: one by one
                if await self.create_executor_task(et):
                    created.append(et)
        return created

    async def put_executor_task(self, et: ExecutorTask, revision: int) -> int:
        key = TASKS_PREFIX + et.id
        res = await self.coord.txn([Compare.mod(key, "==", revision)], [Put(key, et.to_json_bytes())])
        if not res.succeeded:
            raise Conflict(f"executor task {et.id} was updated concurrently")
        return res.revision

    async def put_run_and_executor_task(self, run: Run, revision: int, et: ExecutorTask, et_revision: int, *,
                                        event: bool = False) -> int:
        """Compare-and-put the run and one of its executor tasks in one transaction (an executor's
        status report: one commit, not two). ``Conflict`` when either changed meanwhile."""
        key = TASKS_PREFIX + et.id
        return await self.put_run(run, revision, event=event, compares=[Compare.mod(key, "==", et_revision)],
                                  extra=[Put(key, et.to_json_bytes())])

    async def delete_executor_task(self, task_id: str) -> None:
        await self.coord.delete(TASKS_PREFIX + task_id)

    # --- maintenance --------------------------------------------------------------------------

    async def maintenance_enabled(self) -> bool:
        return await is_maintenance_enabled(self.coord)

    async def set_maintenance(self, enabled: bool) -> None:
        """``BadRequest`` when already in that mode (the datamanager's maintenance key)."""
        await (enable_maintenance if enabled else disable_maintenance)(self.coord)
