"""Configstore wire types: the objects the configstore stores and serves, JSON-compatible with Agola.

Every class has ``to_json()`` (a plain dict ready for ``json.dumps``) and ``from_json(data)``.
Field names on the wire are exactly the reference's (spec §5.2), including its odd ones
(``remote_username``, ``oauth_2_access_token_expires_at``, ``apiurl``). Like Go's ``omitempty``,
empty strings, ``False``, empty maps and lists are left out; the structs Go never omits
(``parent``) and Go times (``created_at``, ``oauth_2_access_token_expires_at``) are always written,
a missing time as Go's zero time ``0001-01-01T00:00:00Z`` (``None`` here).

Enum-valued fields (``visibility``, ``type``, ...) are plain ``str`` holding one of the ``StrEnum``
constants below: decoding never rejects a value, so that a wrong one reaches the operation's
validation and gets its precise 400 message (``agola.services.configstore.validation``).

Differences from the reference, on purpose:
* ``User.tokens`` maps a token name to the **sha256 hex of the token**, never the token itself
  (see ``agola.services.configstore.tokens``).
"""

from __future__ import annotations

import datetime as _dt
import enum
import functools
import re
import types as _pytypes
import typing
from typing import Any, TypeVar, Union

import attrs

from agola.errors import BadRequest

# ---------------------------------------------------------------------------------------------
# Enums (values exactly as on the wire)


class ConfigType(enum.StrEnum):
    USER = "user"
    ORG = "org"
    ORGMEMBER = "orgmember"
    PROJECTGROUP = "projectgroup"
    PROJECT = "project"
    REMOTESOURCE = "remotesource"
    SECRET = "secret"
    VARIABLE = "variable"


class Visibility(enum.StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"


class MemberRole(enum.StrEnum):
    OWNER = "owner"
    MEMBER = "member"


class RemoteSourceType(enum.StrEnum):
    GITEA = "gitea"
    GITHUB = "github"
    GITLAB = "gitlab"


class RemoteSourceAuthType(enum.StrEnum):
    PASSWORD = "password"
    OAUTH2 = "oauth2"


class RemoteRepositoryConfigType(enum.StrEnum):
    # "manual" is only meant for tests (a project without a git host behind it).
    MANUAL = "manual"
    REMOTESOURCE = "remotesource"


class SecretType(enum.StrEnum):
    INTERNAL = "internal"
    # Reserved by the reference for secrets kept by an external provider; never accepted.
    EXTERNAL = "external"


class WhenConditionType(enum.StrEnum):
    SIMPLE = "simple"
    REGEXP = "regexp"


def is_member(enum_cls: type[enum.StrEnum], value: str) -> bool:
    return value in enum_cls._value2member_map_


# Which auth types each remote source type supports (spec §5.2).
SUPPORTED_AUTH_TYPES: dict[str, tuple[str, ...]] = {
    RemoteSourceType.GITEA: (RemoteSourceAuthType.OAUTH2, RemoteSourceAuthType.PASSWORD),
    RemoteSourceType.GITHUB: (RemoteSourceAuthType.OAUTH2,),
    RemoteSourceType.GITLAB: (RemoteSourceAuthType.OAUTH2,),
}


# ---------------------------------------------------------------------------------------------
# A small JSON codec driven by attrs field metadata

_JSON = "json"
_OMITEMPTY = "omitempty"
# Go's zero time, what the reference writes for an unset time.Time.
ZERO_TIME = "0001-01-01T00:00:00Z"


def jf(name: str, default: Any = "", *, omitempty: bool = True, factory: Any = None) -> Any:
    """An attrs field serialized as ``name``; ``omitempty`` drops empty values like Go does."""
    meta = {_JSON: name, _OMITEMPTY: omitempty}
    if factory is not None:
        return attrs.field(factory=factory, metadata=meta)
    return attrs.field(default=default, metadata=meta)


def format_time(value: _dt.datetime | None) -> str:
    if value is None:
        return ZERO_TIME
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    text = value.astimezone(_dt.timezone.utc).isoformat()
    return text.replace("+00:00", "Z")


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_time(value: Any) -> _dt.datetime | None:
    if value is None or value == "" or value == ZERO_TIME:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"invalid time {value!r}")
    # Go writes nanoseconds; Python keeps microseconds.
    text = _FRACTION.sub(r"\1", value.replace("Z", "+00:00").replace("z", "+00:00"))
    try:
        parsed = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"invalid time {value!r}") from None
    if parsed.year == 1 and parsed.month == 1 and parsed.day == 1 and parsed.hour == 0:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_dt.timezone.utc)
    return parsed


def _is_empty(value: Any) -> bool:
    return value is None or value is False or value == "" or value == 0 or (
        isinstance(value, (dict, list, tuple)) and not value
    )


def encode(value: Any) -> Any:
    """Any configstore value (attrs object, list, map, time, scalar) to JSON-ready data."""
    if attrs.has(type(value)):
        encoder = getattr(value, "to_json", None)
        if encoder is not None:
            return encoder()
        return _encode_attrs(value)
    if isinstance(value, _dt.datetime):
        return format_time(value)
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _encode_attrs(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in attrs.fields(type(obj)):
        name = field.metadata.get(_JSON)
        if name is None:
            continue
        value = getattr(obj, field.name)
        if isinstance(value, _dt.datetime) or (value is None and _is_time_field(type(obj), field.name)):
            out[name] = format_time(value)
            continue
        if field.metadata.get(_OMITEMPTY, True) and _is_empty(value):
            continue
        out[name] = encode(value)
    return out


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_time_field(cls: type, name: str) -> bool:
    hint = _hints(cls).get(name)
    return _strip_optional(hint)[0] is _dt.datetime


def _strip_optional(hint: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(hint)
    if origin in (Union, _pytypes.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return hint, False


T = TypeVar("T")


def decode(hint: Any, data: Any, where: str = "value") -> Any:
    """JSON data to a value of the annotated type; wrong shapes are a ``BadRequest`` naming ``where``."""
    inner, optional = _strip_optional(hint)
    if data is None:
        if optional:
            return None
        if inner is _dt.datetime:
            return None
        return _zero(inner)
    if inner is _dt.datetime:
        return parse_time(data)
    if attrs.has(inner):
        return decode_attrs(inner, data, where)
    origin = typing.get_origin(inner)
    if origin is list:
        if not isinstance(data, list):
            raise BadRequest(f"{where}: expected a list")
        (item,) = typing.get_args(inner)
        return [decode(item, v, f"{where}[{i}]") for i, v in enumerate(data)]
    if origin is dict:
        if not isinstance(data, dict):
            raise BadRequest(f"{where}: expected an object")
        _, item = typing.get_args(inner)
        return {str(k): decode(item, v, f"{where}.{k}") for k, v in data.items()}
    if inner is bool:
        if not isinstance(data, bool):
            raise BadRequest(f"{where}: expected a boolean")
        return data
    if inner is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise BadRequest(f"{where}: expected an integer")
        return data
    if inner is str:
        if not isinstance(data, str):
            raise BadRequest(f"{where}: expected a string")
        return data
    if inner is Any:
        return data
    raise TypeError(f"cannot decode type {inner!r}")


def _zero(hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is list:
        return []
    if origin is dict:
        return {}
    if hint is bool:
        return False
    if hint is int:
        return 0
    if hint is str:
        return ""
    if attrs.has(hint):
        return hint()
    return None


def decode_attrs(cls: type[T], data: Any, where: str = "value") -> T:
    if not isinstance(data, dict):
        raise BadRequest(f"{where}: expected an object")
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for field in attrs.fields(cls):  # type: ignore[arg-type]
        name = field.metadata.get(_JSON)
        if name is None or name not in data:
            continue
        kwargs[field.name] = decode(hints[field.name], data[name], f"{where}.{name}")
    return cls(**kwargs)


class JSONMixin:
    """``to_json``/``from_json`` for attrs classes whose fields are declared with ``jf``."""

    def to_json(self) -> dict[str, Any]:
        return _encode_attrs(self)

    @classmethod
    def from_json(cls: type[T], data: Any) -> T:
        return decode_attrs(cls, data, cls.__name__)


# ---------------------------------------------------------------------------------------------
# Stored entities (datamanager datatypes)


@attrs.frozen
class Parent(JSONMixin):
    type: str = jf("type")
    id: str = jf("id")


@attrs.frozen
class WhenCondition(JSONMixin):
    type: str = jf("type")
    match: str = jf("match")


@attrs.frozen
class WhenConditions(JSONMixin):
    include: list[WhenCondition] = jf("include", factory=list)
    exclude: list[WhenCondition] = jf("exclude", factory=list)


@attrs.frozen
class When(JSONMixin):
    """The stored (structured) form of a ``when`` (spec §2.2)."""

    branch: WhenConditions | None = jf("branch", None)
    tag: WhenConditions | None = jf("tag", None)
    ref: WhenConditions | None = jf("ref", None)


@attrs.frozen
class LinkedAccount(JSONMixin):
    version: str = jf("version")
    id: str = jf("id")
    remote_user_id: str = jf("remote_user_id")
    remote_user_name: str = jf("remote_username")
    remote_user_avatar_url: str = jf("remote_user_avatar_url")
    remote_source_id: str = jf("remote_source_id")
    user_access_token: str = jf("user_access_token")
    oauth2_access_token: str = jf("oauth2_access_token")
    oauth2_refresh_token: str = jf("oauth2_refresh_token")
    # None = never expires (Go zero time on the wire).
    oauth2_access_token_expires_at: _dt.datetime | None = jf("oauth_2_access_token_expires_at", None)


@attrs.frozen
class User(JSONMixin):
    version: str = jf("version")
    id: str = jf("id")
    name: str = jf("name")
    # Random value for signing; internal, never exposed by the gateway.
    secret: str = jf("secret")
    linked_accounts: dict[str, LinkedAccount] = jf("linked_accounts", factory=dict)
    password: str = jf("password")
    # token name -> sha256 hex of the token value (the value itself is never stored).
    tokens: dict[str, str] = jf("tokens", factory=dict)
    admin: bool = jf("admin", False)


@attrs.frozen
class Organization(JSONMixin):
    version: str = jf("version")
    id: str = jf("id")
    name: str = jf("name")
    visibility: str = jf("visibility")
    creator_user_id: str = jf("creator_user_id")
    created_at: _dt.datetime | None = jf("created_at", None)


@attrs.frozen
class OrganizationMember(JSONMixin):
    version: str = jf("version")
    id: str = jf("id")
    organization_id: str = jf("organization_id")
    user_id: str = jf("user_id")
    member_role: str = jf("member_role")


@attrs.frozen
class ProjectGroup(JSONMixin):
    version: str = jf("version")
    id: str = jf("id")
    # Empty for the root group of a user or an org.
    name: str = jf("name")
    parent: Parent = jf("parent", factory=Parent, omitempty=False)
    visibility: str = jf("visibility")

    @property
    def is_root(self) -> bool:
        return self.parent.type in (ConfigType.USER, ConfigType.ORG)


@attrs.frozen
class RemoteSource(JSONMixin):
    version: str = jf("version")
    id: str = jf("id")
    name: str = jf("name")
    api_url: str = jf("apiurl")
    skip_verify: bool = jf("skip_verify", False)
    type: str = jf("type")
    auth_type: str = jf("auth_type")
    oauth2_client_id: str = jf("client_id")
    oauth2_client_secret: str = jf("client_secret")
    ssh_host_key: str = jf("ssh_host_key")
    skip_ssh_host_key_check: bool = jf("skip_ssh_host_key_check", False)
    # The reference defaults both to true when absent, and writes them even when false.
    registration_enabled: bool = jf("registration_enabled", True, omitempty=False)
    login_enabled: bool = jf("login_enabled", True, omitempty=False)


@attrs.frozen
class Project(JSONMixin):
    version: str = jf("version")
    id: str = jf("id")
    name: str = jf("name")
    # Random value for signing; internal.
    secret: str = jf("secret")
    parent: Parent = jf("parent", factory=Parent, omitempty=False)
    visibility: str = jf("visibility")
    remote_repository_config_type: str = jf("remote_repository_config_type")
    remote_source_id: str = jf("remote_source_id")
    linked_account_id: str = jf("linked_account_id")
    repository_id: str = jf("repository_id")
    repository_path: str = jf("repository_path")
    ssh_private_key: str = jf("ssh_private_key")
    skip_ssh_host_key_check: bool = jf("skip_ssh_host_key_check", False)
    webhook_secret: str = jf("webhook_secret")
    # Runs from pull requests of forks get no variables unless this is set (reference v0.5.0).
    pass_vars_to_forked_pr: bool = jf("pass_vars_to_forked_pr", False)


@attrs.frozen
class Secret(JSONMixin):
    id: str = jf("id")
    name: str = jf("name")
    parent: Parent = jf("parent", factory=Parent, omitempty=False)
    type: str = jf("type")
    data: dict[str, str] = jf("data", factory=dict)
    secret_provider_id: str = jf("secret_provider_id")
    path: str = jf("path")


@attrs.frozen
class VariableValue(JSONMixin):
    secret_name: str = jf("secret_name")
    secret_var: str = jf("secret_var")
    when: When | None = jf("when", None)


@attrs.frozen
class Variable(JSONMixin):
    id: str = jf("id")
    name: str = jf("name")
    parent: Parent = jf("parent", factory=Parent, omitempty=False)
    values: list[VariableValue] = jf("values", factory=list)


# Datatype name in the datamanager -> class, in the export order of the reference.
DATATYPES: dict[str, type[JSONMixin]] = {
    ConfigType.USER: User,
    ConfigType.ORG: Organization,
    ConfigType.ORGMEMBER: OrganizationMember,
    ConfigType.PROJECTGROUP: ProjectGroup,
    ConfigType.PROJECT: Project,
    ConfigType.REMOTESOURCE: RemoteSource,
    ConfigType.SECRET: Secret,
    ConfigType.VARIABLE: Variable,
}


# ---------------------------------------------------------------------------------------------
# API responses augmented with computed data (spec §5.2): the object's fields flattened, plus the
# reference's Go field names without json tags.


@attrs.frozen
class ProjectGroupResponse:
    project_group: ProjectGroup
    owner_type: str
    owner_id: str
    path: str
    parent_path: str
    global_visibility: str

    def to_json(self) -> dict[str, Any]:
        return {**self.project_group.to_json(), **_dynamic_json(self)}

    @classmethod
    def from_json(cls, data: Any) -> ProjectGroupResponse:
        return cls(ProjectGroup.from_json(data), **_dynamic_from_json(data))


@attrs.frozen
class ProjectResponse:
    project: Project
    owner_type: str
    owner_id: str
    path: str
    parent_path: str
    global_visibility: str

    def to_json(self) -> dict[str, Any]:
        return {**self.project.to_json(), **_dynamic_json(self)}

    @classmethod
    def from_json(cls, data: Any) -> ProjectResponse:
        return cls(Project.from_json(data), **_dynamic_from_json(data))


_DYNAMIC = {
    "owner_type": "OwnerType",
    "owner_id": "OwnerID",
    "path": "Path",
    "parent_path": "ParentPath",
    "global_visibility": "GlobalVisibility",
}


def _dynamic_json(obj: Any) -> dict[str, Any]:
    return {wire: getattr(obj, attr) for attr, wire in _DYNAMIC.items()}


def _dynamic_from_json(data: Any) -> dict[str, str]:
    if not isinstance(data, dict):
        raise BadRequest("expected an object")
    return {attr: str(data.get(wire) or "") for attr, wire in _DYNAMIC.items()}


@attrs.frozen
class SecretResponse:
    secret: Secret
    parent_path: str

    def to_json(self) -> dict[str, Any]:
        return {**self.secret.to_json(), "ParentPath": self.parent_path}

    @classmethod
    def from_json(cls, data: Any) -> SecretResponse:
        return cls(Secret.from_json(data), str(_obj(data).get("ParentPath") or ""))


@attrs.frozen
class VariableResponse:
    variable: Variable
    parent_path: str

    def to_json(self) -> dict[str, Any]:
        return {**self.variable.to_json(), "ParentPath": self.parent_path}

    @classmethod
    def from_json(cls, data: Any) -> VariableResponse:
        return cls(Variable.from_json(data), str(_obj(data).get("ParentPath") or ""))


def _obj(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise BadRequest("expected an object")
    return data


# ---------------------------------------------------------------------------------------------
# Requests and small responses of the configstore API (spec §5.6). The reference has no
# ``omitempty`` on these, so every field is written.


@attrs.frozen
class CreateUserLARequest(JSONMixin):
    remote_source_name: str = jf("remote_source_name", omitempty=False)
    remote_user_id: str = jf("remote_user_id", omitempty=False)
    remote_user_name: str = jf("remote_user_name", omitempty=False)
    user_access_token: str = jf("user_access_token", omitempty=False)
    oauth2_access_token: str = jf("oauth2_access_token", omitempty=False)
    oauth2_refresh_token: str = jf("oauth2_refresh_token", omitempty=False)
    oauth2_access_token_expires_at: _dt.datetime | None = jf("oauth_2_access_token_expires_at", None)


@attrs.frozen
class UpdateUserLARequest(JSONMixin):
    remote_user_id: str = jf("remote_user_id", omitempty=False)
    remote_user_name: str = jf("remote_user_name", omitempty=False)
    user_access_token: str = jf("user_access_token", omitempty=False)
    oauth2_access_token: str = jf("oauth2_access_token", omitempty=False)
    oauth2_refresh_token: str = jf("oauth2_refresh_token", omitempty=False)
    oauth2_access_token_expires_at: _dt.datetime | None = jf("oauth_2_access_token_expires_at", None)


@attrs.frozen
class CreateUserRequest(JSONMixin):
    user_name: str = jf("user_name", omitempty=False)
    create_user_la_request: CreateUserLARequest | None = jf("create_user_la_request", None, omitempty=False)


@attrs.frozen
class UpdateUserRequest(JSONMixin):
    user_name: str = jf("user_name", omitempty=False)


@attrs.frozen
class CreateUserTokenRequest(JSONMixin):
    token_name: str = jf("token_name", omitempty=False)


@attrs.frozen
class CreateUserTokenResponse(JSONMixin):
    # The token value: shown here once, never again.
    token: str = jf("token", omitempty=False)


@attrs.frozen
class AddOrgMemberRequest(JSONMixin):
    role: str = jf("Role", omitempty=False)


@attrs.frozen
class UserOrgsResponse:
    organization: Organization
    role: str

    def to_json(self) -> dict[str, Any]:
        return {"Organization": self.organization.to_json(), "Role": self.role}

    @classmethod
    def from_json(cls, data: Any) -> UserOrgsResponse:
        d = _obj(data)
        return cls(Organization.from_json(d.get("Organization") or {}), str(d.get("Role") or ""))


@attrs.frozen
class OrgMemberResponse:
    user: User
    role: str

    def to_json(self) -> dict[str, Any]:
        return {"User": self.user.to_json(), "Role": self.role}

    @classmethod
    def from_json(cls, data: Any) -> OrgMemberResponse:
        d = _obj(data)
        return cls(User.from_json(d.get("User") or {}), str(d.get("Role") or ""))

