"""Names, ids and refs of configstore objects (spec §5.1).

* A **name** starts with a letter, has only letters, digits and single inner dashes, is at least 2
  characters long, and must not be a UUID in any spelling the reference accepts (so that a ref can
  always tell a name from an id).
* A **name ref** (users, orgs, remote sources) is an id if it parses as a UUID, else a name.
* A **path ref** (project groups, projects) is a path if it contains ``/``, else an id. A path is
  ``user/<name>[/<group>...][/<project>]`` or ``org/<name>[/...]``.
"""

from __future__ import annotations

import re
import uuid
from typing import Literal
from urllib.parse import unquote

import attrs

from agola.errors import BadRequest
from agola.types.configstore import ConfigType

# The reference's ``^[a-zA-Z][a-zA-Z0-9]*([-]?[a-zA-Z0-9]+)+$`` (RE2, linear there) backtracks
# exponentially in Python's re on inputs like "aaaa...a-"; this spelling accepts the same strings
# (together with the length check in ``is_valid_name``) in linear time.
_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9]*(?:-[a-zA-Z0-9]+)*$")
_HEX = re.compile(r"^[0-9a-fA-F]+$")
# Not in the reference (no limit there): names end up in run groups, object paths and URLs.
MAX_NAME_LENGTH = 100
_URN_PREFIX = "urn:uuid:"


def new_id() -> str:
    """A fresh object id: a random UUIDv4 in canonical form."""
    return str(uuid.uuid4())


def parse_uuid(text: str) -> uuid.UUID | None:
    """The UUID ``text`` spells, with exactly the spellings the reference accepts, else None.

    Accepted: canonical ``8-4-4-4-12`` hex, 32 hex digits, either of those in braces
    (``{...}``, canonical only) or after ``urn:uuid:``. Python's own parser is laxer (it accepts
    dashes anywhere), which would reject names the reference accepts.
    """
    if text.startswith(_URN_PREFIX):
        body = text[len(_URN_PREFIX):]
        return _plain_uuid(body) if len(body) in (32, 36) else None
    if len(text) == 38 and text[0] == "{" and text[-1] == "}":
        body = text[1:-1]
        return _plain_uuid(body) if len(body) == 36 else None
    return _plain_uuid(text)


def _plain_uuid(text: str) -> uuid.UUID | None:
    if len(text) == 32:
        return uuid.UUID(hex=text) if _HEX.match(text) else None
    if len(text) == 36:
        if any(text[i] != "-" for i in (8, 13, 18, 23)):
            return None
        digits = text.replace("-", "")
        return uuid.UUID(hex=digits) if len(digits) == 32 and _HEX.match(digits) else None
    return None


def is_uuid(text: str) -> bool:
    return parse_uuid(text) is not None


def is_valid_name(name: str) -> bool:
    return len(name) >= 2 and bool(_NAME.match(name)) and not is_uuid(name)


def check_name(kind: str, name: str) -> None:
    """400 unless ``name`` is present and valid for an object of ``kind`` ("user", "org", ...)."""
    if not name:
        raise BadRequest(f"{kind} name required")
    if len(name) > MAX_NAME_LENGTH:
        raise BadRequest(f"invalid {kind} name: at most {MAX_NAME_LENGTH} characters (got {len(name)})")
    if not is_valid_name(name):
        raise BadRequest(
            f"invalid {kind} name {name!r}: it must start with a letter, contain only letters, "
            "digits and single inner dashes, be at least 2 characters long and not be a UUID"
        )


@attrs.frozen
class NameRef:
    """A ref to a user, org or remote source: by id or by name."""

    kind: Literal["id", "name"]
    value: str

    @property
    def is_id(self) -> bool:
        return self.kind == "id"


def parse_name_ref(ref: str) -> NameRef:
    if not ref:
        raise BadRequest("empty ref")
    parsed = parse_uuid(ref)
    if parsed is not None:
        # Store and compare ids in canonical form whatever spelling the caller used.
        return NameRef("id", str(parsed))
    return NameRef("name", ref)


@attrs.frozen
class ObjectPath:
    """A parsed project group or project path: the owner and the names below its root group."""

    owner_type: str  # ConfigType.USER or ConfigType.ORG
    owner_name: str
    names: tuple[str, ...] = ()

    @property
    def owner_path(self) -> str:
        return f"{self.owner_type}/{self.owner_name}"

    @property
    def is_root(self) -> bool:
        return not self.names

    @property
    def parent(self) -> ObjectPath:
        if not self.names:
            raise BadRequest(f"path {str(self)!r} has no parent")
        return attrs.evolve(self, names=self.names[:-1])

    @property
    def last_name(self) -> str:
        return self.names[-1] if self.names else ""

    def __str__(self) -> str:
        return "/".join((self.owner_type, self.owner_name, *self.names))


def parse_path(path: str) -> ObjectPath:
    """Parse ``user/<name>/...`` or ``org/<name>/...``; 400 with the reason if malformed."""
    parts = path.split("/")
    if len(parts) < 2:
        raise BadRequest(f"wrong path {path!r}: expected user/<name>[/...] or org/<name>[/...]")
    owner_type, owner_name, *names = parts
    if owner_type not in (ConfigType.USER, ConfigType.ORG):
        raise BadRequest(f"wrong path {path!r}: it must start with \"user/\" or \"org/\"")
    if not owner_name or any(not n for n in names):
        raise BadRequest(f"wrong path {path!r}: empty path element")
    return ObjectPath(str(owner_type), owner_name, tuple(names))


@attrs.frozen
class PathRef:
    """A ref to a project group or project: by id or by path."""

    kind: Literal["id", "path"]
    id: str = ""
    path: ObjectPath | None = None

    @property
    def is_path(self) -> bool:
        return self.kind == "path"


def parse_path_ref(ref: str) -> PathRef:
    """A ref as found in a URL segment (it may still be path-escaped, ``user%2Fuser01``)."""
    ref = unquote(ref)
    if not ref:
        raise BadRequest("empty ref")
    if "/" in ref:
        return PathRef("path", path=parse_path(ref))
    parsed = parse_uuid(ref)
    return PathRef("id", id=str(parsed) if parsed is not None else ref)


def owner_path(owner_type: str, owner_name: str) -> str:
    return f"{owner_type}/{owner_name}"


def join_path(parent_path: str, name: str) -> str:
    """Like Go's ``path.Join`` for our paths: the root group (empty name) adds nothing."""
    return f"{parent_path}/{name}" if name else parent_path


def is_ancestor_or_self(ancestor: str, path: str) -> bool:
    """True if ``path`` is ``ancestor`` or below it (whole path elements, not string prefixes)."""
    return path == ancestor or path.startswith(ancestor + "/")
