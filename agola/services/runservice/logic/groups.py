"""Run groups and run counters (§3.3).

A run group is ``/<base type>/<base id>/<sub type>/<escaped name>``, e.g.
``/project/<uuid>/branch/feature%2Fx``. Counters are kept per *root group id* (the base id):
runs of a project are numbered 1, 2, 3... whatever their branch.
"""

from __future__ import annotations

import enum
import hashlib
from urllib.parse import quote, unquote

import attrs

from agola.errors import BadRequest


class GroupBaseType(enum.StrEnum):
    PROJECT = "project"
    USER = "user"  # direct runs


class GroupSubType(enum.StrEnum):
    BRANCH = "branch"
    TAG = "tag"
    PULL_REQUEST = "pr"


# Go's url.PathEscape leaves these reserved characters alone in a path segment.
_PATH_SEGMENT_SAFE = "$&+:=@"


@attrs.frozen
class RunGroup:
    base_type: GroupBaseType
    base_id: str
    sub_type: GroupSubType
    name: str  # unescaped: a branch name, a tag name or a pull request id

    @property
    def path(self) -> str:
        escaped = quote(self.name, safe=_PATH_SEGMENT_SAFE)
        return f"/{self.base_type.value}/{self.base_id}/{self.sub_type.value}/{escaped}"


def run_group_path(base_type: GroupBaseType, base_id: str, sub_type: GroupSubType, name: str) -> str:
    return RunGroup(base_type, base_id, sub_type, name).path


def parse_run_group(path: str) -> RunGroup:
    """Parse a full four element run group path; BadRequest naming what is wrong."""
    parts = path.split("/")
    if len(parts) != 5 or parts[0] != "" or not all(parts[1:]):
        raise BadRequest(f"run group {path!r}: expected /<project|user>/<id>/<branch|tag|pr>/<name>")
    try:
        base_type = GroupBaseType(parts[1])
    except ValueError:
        raise BadRequest(f"run group {path!r}: unknown base type {parts[1]!r}") from None
    try:
        sub_type = GroupSubType(parts[3])
    except ValueError:
        raise BadRequest(f"run group {path!r}: unknown sub type {parts[3]!r}") from None
    return RunGroup(base_type, parts[2], sub_type, unquote(parts[4]))


def validate_group(group: str) -> None:
    """What the runservice itself requires of a run group: present and absolute."""
    if not group:
        raise BadRequest("run group is empty")
    if not group.startswith("/"):
        raise BadRequest(f"run group {group!r} must be an absolute path")


def root_group_id(group: str) -> str:
    """The second path element (project or user id): the key of the run counter and the default
    cache prefix."""
    parts = group.split("/")
    if len(parts) < 3 or parts[0] != "" or not parts[2]:
        raise BadRequest(f"run group {group!r} has no root group id")
    return parts[2]


def group_matches(group_filter: str, group: str) -> bool:
    """Prefix match on whole path elements: ``/project/X/branch/feature`` matches
    ``.../branch/feature`` and deeper paths, not ``.../branch/feature02``."""
    return (group.rstrip("/") + "/").startswith(group_filter.rstrip("/") + "/")


def counter_change_group(root_id: str) -> str:
    """Change group guarding the run counter of a root group (optimistic concurrency)."""
    return f"counter-{root_id}"


def next_counter(current: int) -> int:
    if current < 0:
        raise ValueError("run counters are never negative")
    return current + 1


def approval_change_group(run_id: str) -> str:
    """Change group used by the scheduler's approve loop for a run (§3.8)."""
    return hashlib.sha256(f"approval-{run_id}".encode()).hexdigest()
