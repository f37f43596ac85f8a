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

import enum

import attrs

from agola.types._json import GoTime, JSONType, jembedded, jfield
from agola.types.when import WhenConditionType as WhenConditionType  # re-export: When's kinds

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


def is_member(enum_cls: type[enum.StrEnum], value: str) -> bool:
    return value in enum_cls._value2member_map_


# Which auth types each remote source type supports (spec §5.2).
SUPPORTED_AUTH_TYPES: dict[str, tuple[str, ...]] = {
    RemoteSourceType.GITEA: (RemoteSourceAuthType.OAUTH2, RemoteSourceAuthType.PASSWORD),
    RemoteSourceType.GITHUB: (RemoteSourceAuthType.OAUTH2,),
    RemoteSourceType.GITLAB: (RemoteSourceAuthType.OAUTH2,),
}


class ConfigstoreType(JSONType):
    """Base of the configstore wire types: stored objects outlive versions, so a key a newer
    version wrote is ignored rather than rejected when read."""

    __slots__ = ()
    json_unknown_keys = "ignore"


# ---------------------------------------------------------------------------------------------
# Stored entities (datamanager datatypes)


@attrs.frozen
class Parent(ConfigstoreType):
    type: str = jfield("type", default="")
    id: str = jfield("id", default="")


@attrs.frozen
class WhenCondition(ConfigstoreType):
    type: str = jfield("type", default="")
    match: str = jfield("match", default="")


@attrs.frozen
class WhenConditions(ConfigstoreType):
    include: list[WhenCondition] = jfield("include", factory=list)
    exclude: list[WhenCondition] = jfield("exclude", factory=list)


@attrs.frozen
class When(ConfigstoreType):
    """The stored (structured) form of a ``when`` (spec §2.2)."""

    branch: WhenConditions | None = jfield("branch", default=None)
    tag: WhenConditions | None = jfield("tag", default=None)
    ref: WhenConditions | None = jfield("ref", default=None)


@attrs.frozen
class LinkedAccount(ConfigstoreType):
    version: str = jfield("version", default="")
    id: str = jfield("id", default="")
    remote_user_id: str = jfield("remote_user_id", default="")
    remote_user_name: str = jfield("remote_username", default="")
    remote_user_avatar_url: str = jfield("remote_user_avatar_url", default="")
    remote_source_id: str = jfield("remote_source_id", default="")
    user_access_token: str = jfield("user_access_token", default="")
    oauth2_access_token: str = jfield("oauth2_access_token", default="")
    oauth2_refresh_token: str = jfield("oauth2_refresh_token", default="")
    # None = never expires (Go zero time on the wire).
    oauth2_access_token_expires_at: GoTime = jfield("oauth_2_access_token_expires_at", default=None)
    # Why the forge refused the account's token (revoked, expired): the user must link the account
    # again. "" when the token works. Not in the reference's type (omitted when empty).
    needs_reauthorization: str = jfield("needs_reauthorization", default="")


@attrs.frozen
class User(ConfigstoreType):
    version: str = jfield("version", default="")
    id: str = jfield("id", default="")
    name: str = jfield("name", default="")
    # Random value for signing; internal, never exposed by the gateway.
    secret: str = jfield("secret", default="")
    linked_accounts: dict[str, LinkedAccount] = jfield("linked_accounts", factory=dict)
    password: str = jfield("password", default="")
    # token name -> sha256 hex of the token value (the value itself is never stored).
    tokens: dict[str, str] = jfield("tokens", factory=dict)
    admin: bool = jfield("admin", default=False)


@attrs.frozen
class Organization(ConfigstoreType):
    version: str = jfield("version", default="")
    id: str = jfield("id", default="")
    name: str = jfield("name", default="")
    visibility: str = jfield("visibility", default="")
    creator_user_id: str = jfield("creator_user_id", default="")
    created_at: GoTime = jfield("created_at", default=None)


@attrs.frozen
class OrganizationMember(ConfigstoreType):
    version: str = jfield("version", default="")
    id: str = jfield("id", default="")
    organization_id: str = jfield("organization_id", default="")
    user_id: str = jfield("user_id", default="")
    member_role: str = jfield("member_role", default="")


@attrs.frozen
class ProjectGroup(ConfigstoreType):
    version: str = jfield("version", default="")
    id: str = jfield("id", default="")
    # Empty for the root group of a user or an org.
    name: str = jfield("name", default="")
    parent: Parent = jfield("parent", factory=Parent, omitempty=False)
    visibility: str = jfield("visibility", default="")

    @property
    def is_root(self) -> bool:
        return self.parent.type in (ConfigType.USER, ConfigType.ORG)


@attrs.frozen
class RemoteSource(ConfigstoreType):
    version: str = jfield("version", default="")
    id: str = jfield("id", default="")
    name: str = jfield("name", default="")
    api_url: str = jfield("apiurl", default="")
    skip_verify: bool = jfield("skip_verify", default=False)
    type: str = jfield("type", default="")
    auth_type: str = jfield("auth_type", default="")
    oauth2_client_id: str = jfield("client_id", default="")
    oauth2_client_secret: str = jfield("client_secret", default="")
    ssh_host_key: str = jfield("ssh_host_key", default="")
    skip_ssh_host_key_check: bool = jfield("skip_ssh_host_key_check", default=False)
    # The reference defaults both to true when absent, and writes them even when false.
    registration_enabled: bool = jfield("registration_enabled", default=True, omitempty=False)
    login_enabled: bool = jfield("login_enabled", default=True, omitempty=False)


@attrs.frozen
class Project(ConfigstoreType):
    version: str = jfield("version", default="")
    id: str = jfield("id", default="")
    name: str = jfield("name", default="")
    # Random value for signing; internal.
    secret: str = jfield("secret", default="")
    parent: Parent = jfield("parent", factory=Parent, omitempty=False)
    visibility: str = jfield("visibility", default="")
    remote_repository_config_type: str = jfield("remote_repository_config_type", default="")
    remote_source_id: str = jfield("remote_source_id", default="")
    linked_account_id: str = jfield("linked_account_id", default="")
    repository_id: str = jfield("repository_id", default="")
    repository_path: str = jfield("repository_path", default="")
    ssh_private_key: str = jfield("ssh_private_key", default="")
    skip_ssh_host_key_check: bool = jfield("skip_ssh_host_key_check", default=False)
    webhook_secret: str = jfield("webhook_secret", default="")
    # Runs from pull requests of forks get no variables unless this is set (reference v0.5.0).
    pass_vars_to_forked_pr: bool = jfield("pass_vars_to_forked_pr", default=False)


@attrs.frozen
class Secret(ConfigstoreType):
    id: str = jfield("id", default="")
    name: str = jfield("name", default="")
    parent: Parent = jfield("parent", factory=Parent, omitempty=False)
    type: str = jfield("type", default="")
    data: dict[str, str] = jfield("data", factory=dict)
    secret_provider_id: str = jfield("secret_provider_id", default="")
    path: str = jfield("path", default="")


@attrs.frozen
class VariableValue(ConfigstoreType):
    secret_name: str = jfield("secret_name", default="")
    secret_var: str = jfield("secret_var", default="")
    when: When | None = jfield("when", default=None)


@attrs.frozen
class Variable(ConfigstoreType):
    id: str = jfield("id", default="")
    name: str = jfield("name", default="")
    parent: Parent = jfield("parent", factory=Parent, omitempty=False)
    values: list[VariableValue] = jfield("values", factory=list)


# Datatype name in the datamanager -> class, in the export order of the reference.
DATATYPES: dict[str, type[ConfigstoreType]] = {
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
class ProjectGroupResponse(ConfigstoreType):
    project_group: ProjectGroup = jembedded()
    owner_type: str = jfield("OwnerType", default="", omitempty=False)
    owner_id: str = jfield("OwnerID", default="", omitempty=False)
    path: str = jfield("Path", default="", omitempty=False)
    parent_path: str = jfield("ParentPath", default="", omitempty=False)
    global_visibility: str = jfield("GlobalVisibility", default="", omitempty=False)


@attrs.frozen
class ProjectResponse(ConfigstoreType):
    project: Project = jembedded()
    owner_type: str = jfield("OwnerType", default="", omitempty=False)
    owner_id: str = jfield("OwnerID", default="", omitempty=False)
    path: str = jfield("Path", default="", omitempty=False)
    parent_path: str = jfield("ParentPath", default="", omitempty=False)
    global_visibility: str = jfield("GlobalVisibility", default="", omitempty=False)


@attrs.frozen
class SecretResponse(ConfigstoreType):
    secret: Secret = jembedded()
    parent_path: str = jfield("ParentPath", default="", omitempty=False)


@attrs.frozen
class VariableResponse(ConfigstoreType):
    variable: Variable = jembedded()
    parent_path: str = jfield("ParentPath", default="", omitempty=False)


# ---------------------------------------------------------------------------------------------
# Requests and small responses of the configstore API (spec §5.6). The reference has no
# ``omitempty`` on these, so every field is written.


@attrs.frozen
class CreateUserLARequest(ConfigstoreType):
    remote_source_name: str = jfield("remote_source_name", default="", omitempty=False)
    remote_user_id: str = jfield("remote_user_id", default="", omitempty=False)
    remote_user_name: str = jfield("remote_user_name", default="", omitempty=False)
    user_access_token: str = jfield("user_access_token", default="", omitempty=False)
    oauth2_access_token: str = jfield("oauth2_access_token", default="", omitempty=False)
    oauth2_refresh_token: str = jfield("oauth2_refresh_token", default="", omitempty=False)
    oauth2_access_token_expires_at: GoTime = jfield("oauth_2_access_token_expires_at", default=None)


@attrs.frozen
class UpdateUserLARequest(ConfigstoreType):
    remote_user_id: str = jfield("remote_user_id", default="", omitempty=False)
    remote_user_name: str = jfield("remote_user_name", default="", omitempty=False)
    user_access_token: str = jfield("user_access_token", default="", omitempty=False)
    oauth2_access_token: str = jfield("oauth2_access_token", default="", omitempty=False)
    oauth2_refresh_token: str = jfield("oauth2_refresh_token", default="", omitempty=False)
    oauth2_access_token_expires_at: GoTime = jfield("oauth_2_access_token_expires_at", default=None)
    # Set when the forge refused the token; new credentials come without it (the mark is cleared).
    needs_reauthorization: str = jfield("needs_reauthorization", default="")


@attrs.frozen
class CreateUserRequest(ConfigstoreType):
    user_name: str = jfield("user_name", default="", omitempty=False)
    create_user_la_request: CreateUserLARequest | None = jfield("create_user_la_request", default=None, omitempty=False)


@attrs.frozen
class UpdateUserRequest(ConfigstoreType):
    user_name: str = jfield("user_name", default="", omitempty=False)


@attrs.frozen
class CreateUserTokenRequest(ConfigstoreType):
    token_name: str = jfield("token_name", default="", omitempty=False)


@attrs.frozen
class CreateUserTokenResponse(ConfigstoreType):
    # The token value: shown here once, never again.
    token: str = jfield("token", default="", omitempty=False)


@attrs.frozen
class AddOrgMemberRequest(ConfigstoreType):
    role: str = jfield("Role", default="", omitempty=False)


@attrs.frozen
class UserOrgsResponse(ConfigstoreType):
    organization: Organization = jfield("Organization", factory=Organization, omitempty=False)
    role: str = jfield("Role", default="", omitempty=False)


@attrs.frozen
class OrgMemberResponse(ConfigstoreType):
    user: User = jfield("User", factory=User, omitempty=False)
    role: str = jfield("Role", default="", omitempty=False)
