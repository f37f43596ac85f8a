"""The run queue (spec §6.11): when the scheduler may start a queued run of a run group.

A run group (one branch, tag or pull request of a project, or a user's direct runs) has at most
``scheduler.runsPerGroupLimit`` runs running (default 1), and its queued runs start first in,
first out (run ids are ordered). The scheduler (``agola.services.scheduler``) applies this group
by group over the runservice's API: it reads the group's running runs with a change groups token
for ``group_change_group(group)`` and starts the oldest queued run with it, so the check and the
start are one optimistic transaction and two schedulers never exceed the limit.
"""

from __future__ import annotations

import hashlib


def group_change_group(group: str) -> str:
    """The change group guarding the starts of a run group's runs."""
    return hashlib.sha256(f"changegroup-{group}".encode()).hexdigest()


def group_has_room(running: int, limit: int) -> bool:
    """Whether one more run of a group with ``running`` runs may start (a limit below 1 is 1)."""
    return running < max(1, limit)
