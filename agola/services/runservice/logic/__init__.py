"""Pure runservice logic: no I/O, time and ids injected. One module per concern:

* ``dag``: task graph (parents, ancestors, descendants, validation, levels)
* ``runnable``: depend conditions, skip propagation, approval, tasks ready to run
* ``transitions``: run phase/result changes, run tasks from executor task statuses
* ``executors``: executor liveness, load and choice
* ``scheduling``: ``schedule_run`` (one pass for one run) and executor task cleanup
* ``spec_data``: the executor task spec data sent to executors
* ``fetching``: logs/archives still to fetch, object storage paths, log request checks
* ``actions``: start/cancel/stop/approve/annotations/restart checks
* ``run_queue``: when the scheduler may start a queued run of a run group
* ``creation``: new and restarted runs from a ``RunCreateRequest``
* ``groups``: run groups and run counters
"""

from __future__ import annotations

from agola.services.runservice.logic.actions import (
    add_approver,
    approve_task,
    approvers,
    cancel_run,
    change_run_phase,
    check_restartable,
    restart_refusal,
    set_task_annotations,
    start_run,
    stop_run,
    tasks_to_approve,
)
from agola.services.runservice.logic.creation import (
    build_new_run,
    build_restarted_run,
    run_from_config,
    validate_new_run_request,
)
from agola.services.runservice.logic.dag import check_dag, dag_errors, levels
from agola.services.runservice.logic.executors import (
    HEARTBEAT_EXPIRY,
    choose_executor,
    executor_alive,
    executor_load,
    register_heartbeat,
    stale_siblings,
)
from agola.services.runservice.logic.fetching import (
    Fetch,
    FetchKind,
    fetch_finished,
    mark_archived,
    mark_fetched,
    pending_fetches,
)
from agola.services.runservice.logic.groups import (
    counter_change_group,
    group_matches,
    next_counter,
    parse_run_group,
    root_group_id,
    run_group_path,
)
from agola.services.runservice.logic.runnable import advance_run_tasks, tasks_to_run
from agola.services.runservice.logic.scheduling import (
    Cleanup,
    CleanupKind,
    RunSchedule,
    SchedulingView,
    executor_task_cleanup,
    new_executor_task,
    schedule_run,
    scheduling_view,
)
from agola.services.runservice.logic.spec_data import cache_prefix, executor_task_spec_data
from agola.services.runservice.logic.transitions import (
    advance_run,
    apply_executor_task_status,
    archivable,
    change_phase,
    fail_executor_task,
    receive_executor_task_status,
    run_event_needed,
)

__all__ = [
    "HEARTBEAT_EXPIRY",
    "Cleanup",
    "CleanupKind",
    "Fetch",
    "FetchKind",
    "RunSchedule",
    "SchedulingView",
    "add_approver",
    "advance_run",
    "advance_run_tasks",
    "apply_executor_task_status",
    "approve_task",
    "approvers",
    "archivable",
    "build_new_run",
    "build_restarted_run",
    "cache_prefix",
    "cancel_run",
    "change_phase",
    "change_run_phase",
    "check_dag",
    "check_restartable",
    "choose_executor",
    "counter_change_group",
    "dag_errors",
    "executor_alive",
    "executor_load",
    "executor_task_cleanup",
    "executor_task_spec_data",
    "fail_executor_task",
    "fetch_finished",
    "group_matches",
    "levels",
    "mark_archived",
    "mark_fetched",
    "new_executor_task",
    "next_counter",
    "parse_run_group",
    "pending_fetches",
    "receive_executor_task_status",
    "register_heartbeat",
    "restart_refusal",
    "root_group_id",
    "run_event_needed",
    "run_from_config",
    "run_group_path",
    "schedule_run",
    "scheduling_view",
    "set_task_annotations",
    "stale_siblings",
    "start_run",
    "stop_run",
    "tasks_to_approve",
    "tasks_to_run",
    "validate_new_run_request",
]
