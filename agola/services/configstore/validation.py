"""Validation of the objects an operation receives, before any state is consulted (spec §5.4).

Each function raises ``BadRequest`` with a message naming the field and the problem (never a
secret value). State-dependent checks (existence, uniqueness, tree moves) live in the operations
(``agola.services.configstore.ops``), which call these first.
"""

from __future__ import annotations

from yarl import URL

from agola.errors import BadRequest
from agola.pipeline.when import RegexpError, compile_condition_regexp
from agola.services.configstore.names import check_name
from agola.types.configstore import (
    SUPPORTED_AUTH_TYPES,
    ConfigType,
    MemberRole,
    Organization,
    Project,
    ProjectGroup,
    RemoteRepositoryConfigType,
    RemoteSource,
    RemoteSourceAuthType,
    RemoteSourceType,
    Secret,
    SecretType,
    Variable,
    Visibility,
    When,
    WhenConditions,
    WhenConditionType,
    is_member,
)
from agola.util.varname import check_variable_name

MAX_TOKEN_NAME = 100


def check_visibility(kind: str, visibility: str) -> None:
    if not is_member(Visibility, visibility):
        raise BadRequest(f"invalid {kind} visibility {visibility!r}: expected \"public\" or \"private\"")


def check_member_role(role: str) -> None:
    if not is_member(MemberRole, role):
        raise BadRequest(f"invalid role {role!r}: expected \"owner\" or \"member\"")


def check_token_name(name: str) -> None:
    if not name:
        raise BadRequest("token name required")
    if len(name) > MAX_TOKEN_NAME or not name.isprintable():
        raise BadRequest(f"invalid token name: at most {MAX_TOKEN_NAME} printable characters")


def check_org(org: Organization) -> None:
    check_name("organization", org.name)
    check_visibility("organization", org.visibility)


def check_project_group(group: ProjectGroup) -> None:
    parent = group.parent
    if parent.type not in (ConfigType.PROJECTGROUP, ConfigType.ORG, ConfigType.USER):
        raise BadRequest(f"invalid project group parent type {parent.type!r}")
    if not parent.id:
        raise BadRequest("project group parent id required")
    if parent.type in (ConfigType.ORG, ConfigType.USER):
        if group.name:
            raise BadRequest("project group name for root project group must be empty")
    else:
        check_name("project group", group.name)
    check_visibility("project group", group.visibility)


def check_remote_source(rs: RemoteSource) -> None:
    check_name("remote source", rs.name)
    if not rs.api_url:
        raise BadRequest("remote source api url required")
    check_api_url(rs.api_url)
    if not rs.type:
        raise BadRequest("remote source type required")
    if not is_member(RemoteSourceType, rs.type):
        raise BadRequest(f"unsupported remote source type {rs.type!r}: expected gitea, github or gitlab")
    if not rs.auth_type:
        raise BadRequest("remote source auth type required")
    if not is_member(RemoteSourceAuthType, rs.auth_type):
        raise BadRequest(f"invalid remote source auth type {rs.auth_type!r}: expected \"password\" or \"oauth2\"")
    supported = SUPPORTED_AUTH_TYPES[rs.type]
    if rs.auth_type not in supported:
        raise BadRequest(
            f"remote source type {rs.type!r} doesn't support auth type {rs.auth_type!r} "
            f"(supported: {', '.join(supported)})"
        )
    if rs.auth_type == RemoteSourceAuthType.OAUTH2:
        if not rs.oauth2_client_id:
            raise BadRequest("remote source oauth2 client id required")
        if not rs.oauth2_client_secret:
            raise BadRequest("remote source oauth2 client secret required")


def check_api_url(url: str) -> None:
    """A URL the forge clients can call: absolute http(s), a host (IDNA-encodable), a valid port.
    (``http://[::1``, a port over 65535 or a 300-character host name were stored, then every login,
    registration and link through the remote source was a 500.) The URL is not echoed: it may
    carry credentials."""
    problem = BadRequest("invalid remote source api url: expected an absolute http or https URL with a host")
    try:
        parsed = URL(url)
        host, _ = parsed.host, parsed.port
        if parsed.scheme not in ("http", "https") or not host:
            raise problem
        host.encode("idna")
    except (ValueError, UnicodeError):
        raise problem from None


def check_project(project: Project) -> None:
    check_name("project", project.name)
    if not project.parent.id:
        raise BadRequest("project parent id required")
    if project.parent.type != ConfigType.PROJECTGROUP:
        raise BadRequest(f"invalid project parent type {project.parent.type!r}: it must be \"projectgroup\"")
    check_visibility("project", project.visibility)
    if not is_member(RemoteRepositoryConfigType, project.remote_repository_config_type):
        raise BadRequest(
            f"invalid project remote repository config type {project.remote_repository_config_type!r}"
        )
    if project.remote_repository_config_type == RemoteRepositoryConfigType.REMOTESOURCE:
        for attr, what in (
            ("remote_source_id", "remote source id"),
            ("linked_account_id", "linked account id"),
            ("repository_id", "remote repository id"),
            ("repository_path", "remote repository path"),
        ):
            if not getattr(project, attr):
                raise BadRequest(f"project {what} required")


def _check_parent(kind: str, parent_type: str) -> None:
    if parent_type not in (ConfigType.PROJECT, ConfigType.PROJECTGROUP):
        raise BadRequest(f"invalid {kind} parent type {parent_type!r}: expected \"project\" or \"projectgroup\"")


def check_secret(secret: Secret) -> None:
    check_variable_name("secret", secret.name)
    if secret.type != SecretType.INTERNAL:
        raise BadRequest(f"invalid secret type {secret.type!r}: only \"internal\" secrets are supported")
    if not secret.data:
        raise BadRequest("secret data required (at least one key)")
    _check_parent("secret", secret.parent.type)


def check_variable(variable: Variable) -> None:
    check_variable_name("variable", variable.name)
    if not variable.values:
        raise BadRequest("variable values required (at least one)")
    for i, value in enumerate(variable.values):
        if not value.secret_name:
            raise BadRequest(f"variable values[{i}]: secret_name required")
        if not value.secret_var:
            raise BadRequest(f"variable values[{i}]: secret_var required")
        if value.when is not None:
            check_when(value.when, f"variable values[{i}].when")
    _check_parent("variable", variable.parent.type)


def check_when(when: When, where: str) -> None:
    for key, conds in (("branch", when.branch), ("tag", when.tag), ("ref", when.ref)):
        if conds is not None:
            _check_conditions(conds, f"{where}.{key}")


def _check_conditions(conds: WhenConditions, where: str) -> None:
    for side, items in (("include", conds.include), ("exclude", conds.exclude)):
        for i, cond in enumerate(items):
            if not is_member(WhenConditionType, cond.type):
                raise BadRequest(f"{where}.{side}[{i}]: invalid condition type {cond.type!r}")
            if cond.type == WhenConditionType.REGEXP:
                try:
                    compile_condition_regexp(cond.match)
                except RegexpError as exc:
                    raise BadRequest(f"{where}.{side}[{i}]: wrong regular expression {cond.match!r}: {exc}") from None
