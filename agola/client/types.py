"""Request and response bodies of the gateway API (spec §6.2), with the reference's JSON names.

Responses decode leniently: unknown keys are ignored and missing ones take the field's default, so
a newer gateway that adds fields does not break an older client. Requests encode every field, but
update requests (whose fields are all optional) leave out the ``None`` ones, so only what the user
changed is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import attrs

T = TypeVar("T", bound="Wire")


def _nested(cls: type[Any]) -> dict[str, Any]:
    return {"decode": lambda v: cls.from_json(v) if isinstance(v, Mapping) else None}


def _nested_list(cls: type[Any]) -> dict[str, Any]:
    return {"decode": lambda v: [cls.from_json(x) for x in (v or []) if isinstance(x, Mapping)]}


def _nested_map(cls: type[Any]) -> dict[str, Any]:
    return {"decode": lambda v: {str(k): cls.from_json(x) for k, x in (v or {}).items() if isinstance(x, Mapping)}}


def _none_as(default: Callable[[], Any]) -> dict[str, Any]:
    # Go encodes nil slices/maps as null: read them as empty.
    return {"decode": lambda v: default() if v is None else v}


_LIST = _none_as(list)
_MAP = _none_as(dict)


class Wire:
    """JSON (de)serialization shared by every type here. A field's metadata may hold ``json``
    (its wire name when it differs) and ``decode`` (a converter for nested values)."""

    omit_none: ClassVar[bool] = False

    @classmethod
    def from_json(cls: type[T], data: Mapping[str, Any]) -> T:
        kwargs: dict[str, Any] = {}
        for f in attrs.fields(cls):  # type: ignore[arg-type]  # every Wire subclass is an attrs class
            key = f.metadata.get("json", f.name)
            if key not in data:
                continue
            value = data[key]
            decode = f.metadata.get("decode")
            kwargs[f.name] = decode(value) if decode else value
        return cls(**kwargs)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in attrs.fields(type(self)):  # type: ignore[arg-type]  # every Wire subclass is an attrs class
            value = getattr(self, f.name)
            if value is None and self.omit_none:
                continue
            out[f.metadata.get("json", f.name)] = _encode(value)
        return out


def _encode(value: Any) -> Any:
    if isinstance(value, Wire):
        return value.to_json()
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


# ---------------------------------------------------------------- users


@attrs.frozen
class LinkedAccountResponse(Wire):
    id: str = ""
    remote_source_id: str = ""
    remote_user_name: str = ""
    remote_user_avatar_url: str = ""
    # Why the forge refused the account's token ("" when it works): link the account again.
    needs_reauthorization: str = ""


@attrs.frozen
class UserResponse(Wire):
    id: str = ""
    username: str = ""
    tokens: list[str] = attrs.field(factory=list, metadata=_LIST)
    linked_accounts: list[LinkedAccountResponse] = attrs.field(factory=list, metadata=_nested_list(LinkedAccountResponse))


@attrs.frozen
class CreateUserRequest(Wire):
    username: str


@attrs.frozen
class CreateUserTokenRequest(Wire):
    token_name: str


@attrs.frozen
class CreateUserTokenResponse(Wire):
    token: str = attrs.field(default="", repr=False)


@attrs.frozen
class CreateUserLARequest(Wire):
    remote_source_name: str
    remote_source_login_name: str = ""
    remote_source_login_password: str = attrs.field(default="", repr=False)


@attrs.frozen
class RemoteRepoResponse(Wire):
    """A repository of the user on a remote source where agola can install a deploy key and a hook."""

    id: str = ""
    path: str = ""


@attrs.frozen
class CreateUserLAResponse(Wire):
    linked_account: LinkedAccountResponse | None = attrs.field(default=None, metadata=_nested(LinkedAccountResponse))
    oauth2_redirect: str = ""


@attrs.frozen
class LoginUserRequest(Wire):
    remote_source_name: str
    login_name: str = ""
    password: str = attrs.field(default="", repr=False)


@attrs.frozen
class RegisterUserRequest(Wire):
    username: str
    remote_source_name: str
    remote_source_login_name: str = ""
    remote_source_login_password: str = attrs.field(default="", repr=False)


@attrs.frozen
class LoginUserResponse(Wire):
    """``POST /login`` through a remote source: a login token (a JWT, sent as ``bearer``) and its
    user, or the OAuth2 page to open first (``oauth2_redirect``)."""

    token: str = attrs.field(default="", repr=False)
    user: UserResponse | None = attrs.field(default=None, metadata=_nested(UserResponse))
    oauth2_redirect: str = ""
    oauth2_nonce: str = attrs.field(default="", repr=False)  # give it back to complete_oauth2_login


# ---------------------------------------------------------------- orgs


@attrs.frozen
class OrgResponse(Wire):
    id: str = ""
    name: str = ""
    visibility: str = ""


@attrs.frozen
class CreateOrgRequest(Wire):
    name: str
    visibility: str = "public"


@attrs.frozen
class OrgMemberResponse(Wire):
    user: UserResponse | None = attrs.field(default=None, metadata=_nested(UserResponse))
    role: str = ""


@attrs.frozen
class OrgMembersResponse(Wire):
    organization: OrgResponse | None = attrs.field(default=None, metadata=_nested(OrgResponse))
    members: list[OrgMemberResponse] = attrs.field(factory=list, metadata=_nested_list(OrgMemberResponse))


@attrs.frozen
class AddOrgMemberRequest(Wire):
    role: str = "member"


@attrs.frozen
class AddOrgMemberResponse(Wire):
    organization: OrgResponse | None = attrs.field(default=None, metadata=_nested(OrgResponse))
    user: UserResponse | None = attrs.field(default=None, metadata=_nested(UserResponse))
    role: str = ""


# ---------------------------------------------------------------- projects and groups


@attrs.frozen
class ProjectResponse(Wire):
    id: str = ""
    name: str = ""
    path: str = ""
    parent_path: str = ""
    visibility: str = ""
    global_visibility: str = ""


@attrs.frozen
class ProjectGroupResponse(Wire):
    id: str = ""
    name: str = ""
    path: str = ""
    parent_path: str = ""
    visibility: str = ""
    global_visibility: str = ""


@attrs.frozen
class CreateProjectGroupRequest(Wire):
    name: str
    parent_ref: str
    visibility: str = "public"


@attrs.frozen
class UpdateProjectGroupRequest(Wire):
    omit_none = True
    name: str | None = None
    parent_ref: str | None = None
    visibility: str | None = None


@attrs.frozen
class CreateProjectRequest(Wire):
    name: str
    parent_ref: str
    repo_path: str = ""
    remote_source_name: str = ""
    visibility: str = "public"
    skip_ssh_host_key_check: bool = False


@attrs.frozen
class UpdateProjectRequest(Wire):
    omit_none = True
    name: str | None = None
    parent_ref: str | None = None
    visibility: str | None = None
    # Runs of pull requests from forks get the project's variables (secrets!) only when true.
    pass_vars_to_forked_pr: bool | None = None


@attrs.frozen
class ProjectCreateRunRequest(Wire):
    branch: str = ""
    tag: str = ""
    ref: str = ""
    commit_sha: str = ""


# ---------------------------------------------------------------- secrets and variables


@attrs.frozen
class SecretResponse(Wire):
    id: str = ""
    name: str = ""
    parent_path: str = ""


@attrs.frozen
class CreateSecretRequest(Wire):
    """``name`` is the new name in an update (the old one is in the path)."""

    name: str
    data: dict[str, str] = attrs.field(factory=dict, repr=False)
    type: str = "internal"


UpdateSecretRequest = CreateSecretRequest


@attrs.frozen
class VariableValue(Wire):
    secret_name: str = ""
    secret_var: str = ""
    matching_secret_parent_path: str = ""
    when: Any = None


@attrs.frozen
class VariableValueRequest(Wire):
    secret_name: str
    secret_var: str
    when: Any = None  # a `when` block in pipeline syntax: {branch, tag, ref}


@attrs.frozen
class VariableResponse(Wire):
    id: str = ""
    name: str = ""
    values: list[VariableValue] = attrs.field(factory=list, metadata=_nested_list(VariableValue))
    parent_path: str = ""


@attrs.frozen
class CreateVariableRequest(Wire):
    name: str
    values: list[VariableValueRequest] = attrs.field(factory=list)


UpdateVariableRequest = CreateVariableRequest


# ---------------------------------------------------------------- remote sources


@attrs.frozen
class RemoteSourceResponse(Wire):
    id: str = ""
    name: str = ""
    auth_type: str = ""
    registration_enabled: bool = False
    login_enabled: bool = False


@attrs.frozen
class CreateRemoteSourceRequest(Wire):
    name: str
    type: str
    auth_type: str
    apiurl: str = ""
    skip_verify: bool = False
    oauth_2_client_id: str = ""
    oauth_2_client_secret: str = attrs.field(default="", repr=False)
    ssh_host_key: str = ""
    skip_ssh_host_key_check: bool = False
    registration_enabled: bool | None = None
    login_enabled: bool | None = None

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        for key in ("registration_enabled", "login_enabled"):
            if out[key] is None:
                del out[key]  # optional in the reference: the server picks the default
        return out


@attrs.frozen
class UpdateRemoteSourceRequest(Wire):
    omit_none = True
    name: str | None = None
    apiurl: str | None = None
    skip_verify: bool | None = None
    oauth_2_client_id: str | None = None
    oauth_2_client_secret: str | None = attrs.field(default=None, repr=False)
    ssh_host_key: str | None = None
    skip_ssh_host_key_check: bool | None = None
    registration_enabled: bool | None = None
    login_enabled: bool | None = None


# ---------------------------------------------------------------- runs


@attrs.frozen
class RunsResponse(Wire):
    """One row of ``GET /runs``."""

    id: str = ""
    counter: int = 0
    name: str = ""
    annotations: dict[str, str] = attrs.field(factory=dict, metadata=_MAP)
    phase: str = ""
    result: str = ""
    tasks_waiting_approval: list[str] = attrs.field(factory=list, metadata=_LIST)
    enqueue_time: str | None = None
    start_time: str | None = None
    end_time: str | None = None


@attrs.frozen
class CreatedRunsResponse(Wire):
    """The runs a ``createrun`` made (a project's or a direct run)."""

    runs: list[RunsResponse] = attrs.field(factory=list, metadata=_nested_list(RunsResponse))


@attrs.frozen
class RunResponseTask(Wire):
    id: str = ""
    name: str = ""
    status: str = ""
    level: int = 0
    depends: Any = None
    waiting_approval: bool = False
    approved: bool = False
    approval_annotations: dict[str, str] = attrs.field(factory=dict, metadata=_MAP)
    start_time: str | None = None
    end_time: str | None = None
    fail_error: str = ""  # not in the reference: why it failed when no step says (executor lost)


@attrs.frozen
class RunResponse(Wire):
    id: str = ""
    counter: int = 0
    name: str = ""
    annotations: dict[str, str] = attrs.field(factory=dict, metadata=_MAP)
    phase: str = ""
    result: str = ""
    setup_errors: list[str] = attrs.field(factory=list, metadata=_LIST)
    stopping: bool = False
    tasks: dict[str, RunResponseTask] = attrs.field(factory=dict, metadata=_nested_map(RunResponseTask))
    tasks_waiting_approval: list[str] = attrs.field(factory=list, metadata=_LIST)
    enqueue_time: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    can_restart_from_scratch: bool = False
    can_restart_from_failed_tasks: bool = False

    @property
    def finished(self) -> bool:
        """The run will not change any more (spec §3.2: setuperror, cancelled, finished)."""
        return self.phase in RUN_FINISHED_PHASES

    def task_by_name(self, name_or_id: str) -> RunResponseTask | None:
        if name_or_id in self.tasks:
            return self.tasks[name_or_id]
        return next((t for t in self.tasks.values() if t.name == name_or_id), None)


RUN_FINISHED_PHASES = frozenset({"setuperror", "cancelled", "finished"})
TASK_FINISHED_STATUSES = frozenset({"skipped", "cancelled", "stopped", "success", "failed"})


@attrs.frozen
class RunTaskResponseSetupStep(Wire):
    phase: str = ""
    name: str = ""
    start_time: str | None = None
    end_time: str | None = None


@attrs.frozen
class RunTaskResponseStep(Wire):
    phase: str = ""
    type: str = ""
    name: str = ""
    command: str = ""
    shell: str = ""
    exit_status: int | None = None
    start_time: str | None = None
    end_time: str | None = None
    log_archived: bool = False


@attrs.frozen
class RunTaskResponse(Wire):
    id: str = ""
    name: str = ""
    status: str = ""
    waiting_approval: bool = False
    approved: bool = False
    approval_annotations: dict[str, str] = attrs.field(factory=dict, metadata=_MAP)
    setup_step: RunTaskResponseSetupStep | None = attrs.field(default=None, metadata=_nested(RunTaskResponseSetupStep))
    steps: list[RunTaskResponseStep] = attrs.field(factory=list, metadata=_nested_list(RunTaskResponseStep))
    start_time: str | None = None
    end_time: str | None = None
    fail_error: str = ""


@attrs.frozen
class RunActionsRequest(Wire):
    action_type: str  # restart | cancel | stop
    from_start: bool = False


@attrs.frozen
class RunTaskActionsRequest(Wire):
    action_type: str = "approve"


@attrs.frozen
class RunEvent(Wire):
    """A run phase/result change from the events stream (the reference's Go field names)."""

    sequence: str = attrs.field(default="", metadata={"json": "Sequence"})
    run_id: str = attrs.field(default="", metadata={"json": "RunID"})
    phase: str = attrs.field(default="", metadata={"json": "Phase"})
    result: str = attrs.field(default="", metadata={"json": "Result"})


# ---------------------------------------------------------------- direct runs, version

DEFAULT_PULL_REQUEST_REF_REGEXES = (r"refs/pull/(\d+)/head", r"refs/merge-requests/(\d+)/head")


@attrs.frozen
class UserCreateRunRequest(Wire):
    """``POST /user/createrun`` (spec §6.8): a direct run of a commit pushed to the gitserver."""

    repo_uuid: str
    repo_path: str
    commit_sha: str
    message: str = "agola direct run"
    branch: str = ""
    tag: str = ""
    ref: str = ""
    pull_request_ref_regexes: list[str] = attrs.field(factory=lambda: list(DEFAULT_PULL_REQUEST_REF_REGEXES))
    variables: dict[str, str] = attrs.field(factory=dict, repr=False)
    # Not in the reference: variables whose values the run's logs show as *** (`--secret`).
    secret_variables: dict[str, str] = attrs.field(factory=dict, repr=False)


@attrs.frozen
class UserCreateRunResponse:
    """The reference answers 201 with an empty body; a gateway that returns the created runs
    (``{"runs": [{"id": ...}]}``, ``{"run_ids": [...]}``, a list of runs or one run) fills
    ``run_ids``."""

    run_ids: list[str] = attrs.field(factory=list)

    @classmethod
    def from_body(cls, body: Any) -> UserCreateRunResponse:
        items: Any = []
        if isinstance(body, list):
            items = body
        elif isinstance(body, Mapping):
            if isinstance(body.get("run_ids"), list):
                return cls([str(x) for x in body["run_ids"]])
            if isinstance(body.get("runs"), list):
                items = body["runs"]
            elif isinstance(body.get("run"), Mapping):
                items = [body["run"]]
            elif body.get("id"):
                items = [body]
        return cls([str(x["id"]) for x in items if isinstance(x, Mapping) and x.get("id")])


@attrs.frozen
class VersionResponse(Wire):
    version: str = ""
    service: str = ""


# ---------------------------------------------------------------- maintenance (admin)


@attrs.frozen
class ImportResponse(Wire):
    imported: int = 0


@attrs.frozen
class MaintenanceInstance(Wire):
    """One live instance of a service; ``current_status``: it serves in maintenance mode."""

    id: str = ""
    host: str = ""
    pid: int = 0
    current_status: bool = False


@attrs.frozen
class MaintenanceStatusResponse(Wire):
    """``requested_status``: maintenance mode is requested; ``current_status``: the mode the
    service is in (the requested one once every instance has switched)."""

    requested_status: bool = False
    current_status: bool = False
    instances: list[MaintenanceInstance] = attrs.field(factory=list, metadata=_nested_list(MaintenanceInstance))
