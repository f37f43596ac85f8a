"""Every operation's failure paths: (operation on a populated world, expected 400 message)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agola.errors import BadRequest
from agola.services.configstore import ops
from agola.types.configstore import (
    CreateUserLARequest,
    CreateUserRequest,
    Organization,
    Parent,
    Project,
    ProjectGroup,
    RemoteSource,
    Secret,
    UpdateUserLARequest,
    UpdateUserRequest,
    Variable,
    VariableValue,
    When,
    WhenCondition,
    WhenConditions,
)

from .world import World

Op = Callable[[World], Any]

UUID_NAME = "a6e0c3f4-3b7e-4d4c-9a3e-2d1c2b3a4f5e"


def pg(parent: str, name: str, visibility: str = "public", type: str = "projectgroup") -> ProjectGroup:
    return ProjectGroup(name=name, parent=Parent(type, parent), visibility=visibility)


def proj(parent: str, name: str, **kw: Any) -> Project:
    kw.setdefault("visibility", "public")
    kw.setdefault("remote_repository_config_type", "manual")
    return Project(name=name, parent=Parent("projectgroup", parent), **kw)


def rs(name: str = "rs01", **kw: Any) -> RemoteSource:
    base: dict[str, Any] = dict(name=name, api_url="http://127.0.0.1:3000", type="gitea", auth_type="password")
    base.update(kw)
    return RemoteSource(**base)


def repo_project(w: World, la_owner: str = "user02", rs_name: str = "gitea01") -> Project:
    user = w.state.user_by_name(la_owner)
    assert user is not None
    la_id = next(iter(user.linked_accounts), "missing")
    source = w.state.remote_source_by_name(rs_name)
    assert source is not None
    return proj("org/org01", "repoproject", remote_repository_config_type="remotesource",
                remote_source_id=source.id, linked_account_id=la_id, repository_id="1", repository_path="o/r")


def la_id(w: World, user: str = "user02") -> str:
    u = w.state.user_by_name(user)
    assert u is not None
    return next(iter(u.linked_accounts))


def group_id(w: World, path: str) -> str:
    g = w.state.project_group_by_ref(path)
    assert g is not None
    return g.id


CASES: list[tuple[str, Op, str]] = [
    # users
    ("user-name-required", lambda w: ops.create_user(w.state, CreateUserRequest("")), "user name required"),
    ("user-name-invalid", lambda w: ops.create_user(w.state, CreateUserRequest("bad_name")), "invalid user name 'bad_name'"),
    ("user-name-uuid", lambda w: ops.create_user(w.state, CreateUserRequest(UUID_NAME)), "invalid user name"),
    ("user-duplicate", lambda w: ops.create_user(w.state, CreateUserRequest("user01")), "user with name 'user01' already exists"),
    ("user-la-missing-rs", lambda w: ops.create_user(w.state, CreateUserRequest("user09", CreateUserLARequest("nors", "1"))),
     "remote source 'nors' doesn't exist"),
    ("user-la-already-linked", lambda w: ops.create_user(w.state, CreateUserRequest("user09", CreateUserLARequest("gitea01", "42"))),
     "remote user '42' of remote source 'gitea01' is already linked"),
    ("update-user-missing", lambda w: ops.update_user(w.state, "nouser", UpdateUserRequest("x1")), "user 'nouser' doesn't exist"),
    ("update-user-duplicate", lambda w: ops.update_user(w.state, "user01", UpdateUserRequest("user02")), "user with name 'user02' already exists"),
    ("update-user-invalid", lambda w: ops.update_user(w.state, "user01", UpdateUserRequest("-x")), "invalid user name"),
    ("delete-user-missing", lambda w: ops.delete_user(w.state, "nouser"), "user 'nouser' doesn't exist"),
    ("create-la-user-missing", lambda w: ops.create_user_la(w.state, "nouser", CreateUserLARequest("gitea01", "7")), "user 'nouser' doesn't exist"),
    ("create-la-rs-missing", lambda w: ops.create_user_la(w.state, "user01", CreateUserLARequest("nors", "7")), "remote source 'nors' doesn't exist"),
    ("create-la-linked", lambda w: ops.create_user_la(w.state, "user01", CreateUserLARequest("gitea01", "42")), "already linked"),
    ("update-la-missing", lambda w: ops.update_user_la(w.state, "user01", "nola", UpdateUserLARequest("7")), "linked account 'nola' of user 'user01' doesn't exist"),
    ("delete-la-missing", lambda w: ops.delete_user_la(w.state, "user01", "nola"), "linked account 'nola' of user 'user01' doesn't exist"),
    ("token-name-required", lambda w: ops.create_user_token(w.state, "user01", ""), "token name required"),
    ("token-user-missing", lambda w: ops.create_user_token(w.state, "nouser", "t"), "user 'nouser' doesn't exist"),
    ("delete-token-missing", lambda w: ops.delete_user_token(w.state, "user01", "nope"), "token 'nope' for user 'user01' doesn't exist"),
    # orgs
    ("org-name-required", lambda w: ops.create_org(w.state, Organization(visibility="public")), "organization name required"),
    ("org-name-invalid", lambda w: ops.create_org(w.state, Organization(name="a.b", visibility="public")), "invalid organization name"),
    ("org-visibility", lambda w: ops.create_org(w.state, Organization(name="org09", visibility="secret")), "invalid organization visibility 'secret'"),
    ("org-duplicate", lambda w: ops.create_org(w.state, Organization(name="org01", visibility="public")), "organization with name 'org01' already exists"),
    ("org-creator-missing", lambda w: ops.create_org(w.state, Organization(name="org09", visibility="public", creator_user_id="nouser")),
     "creator user 'nouser' doesn't exist"),
    ("delete-org-missing", lambda w: ops.delete_org(w.state, "noorg"), "organization 'noorg' doesn't exist"),
    ("member-role", lambda w: ops.add_org_member(w.state, "org01", "user02", "admin"), "invalid role 'admin'"),
    ("member-org-missing", lambda w: ops.add_org_member(w.state, "noorg", "user02", "member"), "organization 'noorg' doesn't exist"),
    ("member-user-missing", lambda w: ops.add_org_member(w.state, "org01", "nouser", "member"), "user 'nouser' doesn't exist"),
    ("remove-not-member", lambda w: ops.remove_org_member(w.state, "org01", "user02"), "user 'user02' is not a member of organization 'org01'"),
    # project groups
    ("pg-name-required", lambda w: ops.create_project_group(w.state, pg("org/org01", "")), "project group name required"),
    ("pg-name-invalid", lambda w: ops.create_project_group(w.state, pg("org/org01", "a b")), "invalid project group name"),
    ("pg-visibility", lambda w: ops.create_project_group(w.state, pg("org/org01", "g9", visibility="")), "invalid project group visibility"),
    ("pg-parent-type", lambda w: ops.create_project_group(w.state, pg("org/org01", "g9", type="project")), "invalid project group parent type 'project'"),
    ("pg-root-create", lambda w: ops.create_project_group(w.state, pg("someorgid", "", type="org")), "wrong project group parent type 'org'"),
    ("pg-root-named", lambda w: ops.create_project_group(w.state, pg("someorgid", "x1", type="org")), "name for root project group must be empty"),
    ("pg-parent-id-required", lambda w: ops.create_project_group(w.state, pg("", "g9")), "project group parent id required"),
    ("pg-parent-missing", lambda w: ops.create_project_group(w.state, pg("org/org01/nogroup", "g9")), "parent project group 'org/org01/nogroup' doesn't exist"),
    ("pg-parent-owner-missing", lambda w: ops.create_project_group(w.state, pg("org/noorg", "g9")), "parent project group 'org/noorg' doesn't exist"),
    ("pg-duplicate", lambda w: ops.create_project_group(w.state, pg("org/org01", "group01")), "project group with name 'group01', path 'org/org01/group01' already exists"),
    ("pg-move-into-itself", lambda w: ops.update_project_group(w.state, "org/org01/group01", pg("org/org01/group01", "group01")),
     "cannot move project group inside itself or child project group"),
    ("pg-move-into-descendant", lambda w: ops.update_project_group(w.state, "org/org01/group01", pg("org/org01/group01/sub01", "group01")),
     "cannot move project group inside itself or child project group"),
    ("pg-move-duplicate", lambda w: ops.update_project_group(w.state, "org/org01/group01/sub01", pg("org/org01", "group01")),
     "project group with name 'group01', path 'org/org01/group01' already exists"),
    ("pg-update-missing", lambda w: ops.update_project_group(w.state, "org/org01/nogroup", pg("org/org01", "x1")), "project group 'org/org01/nogroup' doesn't exist"),
    ("pg-update-other-id", lambda w: ops.update_project_group(w.state, "org/org01/group01", ProjectGroup(id="other", name="group01", parent=Parent("projectgroup", "org/org01"), visibility="public")),
     "has a different id"),
    ("pg-root-change-parent", lambda w: ops.update_project_group(w.state, "org/org01", pg(w.state.user_by_name("user01").id, "", type="user")),  # type: ignore[union-attr]
     "changing project group parent type isn't supported"),
    ("pg-root-change-owner", lambda w: ops.update_project_group(w.state, "org/org01", pg("otherorg", "", type="org")),
     "cannot change root project group parent type or id"),
    ("pg-change-parent-type", lambda w: ops.update_project_group(w.state, "org/org01/group01", pg("someorg", "", type="org")),
     "changing project group parent type isn't supported"),
    ("pg-delete-root", lambda w: ops.delete_project_group(w.state, "org/org01"), "cannot delete root project group"),
    ("pg-delete-user-root", lambda w: ops.delete_project_group(w.state, "user/user01"), "cannot delete root project group"),
    ("pg-delete-missing", lambda w: ops.delete_project_group(w.state, "org/org01/nogroup"), "project group 'org/org01/nogroup' doesn't exist"),
    # projects
    ("project-name-invalid", lambda w: ops.create_project(w.state, proj("org/org01", "p_1")), "invalid project name"),
    ("project-parent-missing", lambda w: ops.create_project(w.state, proj("org/org01/nogroup", "p1")), "parent project group 'org/org01/nogroup' doesn't exist"),
    ("project-visibility", lambda w: ops.create_project(w.state, proj("org/org01", "p1", visibility="internal")), "invalid project visibility 'internal'"),
    ("project-config-type", lambda w: ops.create_project(w.state, proj("org/org01", "p1", remote_repository_config_type="svn")),
     "invalid project remote repository config type 'svn'"),
    ("project-rs-fields", lambda w: ops.create_project(w.state, proj("org/org01", "p1", remote_repository_config_type="remotesource")),
     "project remote source id required"),
    ("project-duplicate", lambda w: ops.create_project(w.state, proj("org/org01/group01", "project01")),
     "project with name 'project01', path 'org/org01/group01/project01' already exists"),
    ("project-rs-missing", lambda w: ops.create_project(w.state, _with(repo_project(w), remote_source_id="nors")),
     "remote source 'nors' doesn't exist"),
    ("project-la-missing", lambda w: ops.create_project(w.state, _with(repo_project(w), linked_account_id="nola")),
     "user for linked account 'nola' doesn't exist"),
    ("project-la-other-rs", lambda w: ops.create_project(w.state, repo_project(w, rs_name="github01")),
     "doesn't belong to remote source 'github01'"),
    ("project-update-missing", lambda w: ops.update_project(w.state, "org/org01/noproject", proj("org/org01", "p1")), "project 'org/org01/noproject' doesn't exist"),
    ("project-update-other-id", lambda w: ops.update_project(w.state, "org/org01/group01/project01", proj("org/org01/group01", "project01", id="x")),
     "has a different id"),
    ("project-delete-missing", lambda w: ops.delete_project(w.state, "org/org01/noproject"), "project 'org/org01/noproject' doesn't exist"),
    # remote sources
    ("rs-name", lambda w: ops.create_remote_source(w.state, rs(name="")), "remote source name required"),
    ("rs-apiurl", lambda w: ops.create_remote_source(w.state, rs(api_url="")), "remote source api url required"),
    ("rs-type-required", lambda w: ops.create_remote_source(w.state, rs(type="")), "remote source type required"),
    ("rs-type-unknown", lambda w: ops.create_remote_source(w.state, rs(type="bitbucket")), "unsupported remote source type 'bitbucket'"),
    ("rs-auth-required", lambda w: ops.create_remote_source(w.state, rs(auth_type="")), "remote source auth type required"),
    ("rs-auth-unknown", lambda w: ops.create_remote_source(w.state, rs(auth_type="ldap")), "invalid remote source auth type 'ldap'"),
    ("rs-github-password", lambda w: ops.create_remote_source(w.state, rs(type="github")), "remote source type 'github' doesn't support auth type 'password'"),
    ("rs-gitlab-password", lambda w: ops.create_remote_source(w.state, rs(type="gitlab")), "remote source type 'gitlab' doesn't support auth type 'password'"),
    ("rs-oauth2-client-id", lambda w: ops.create_remote_source(w.state, rs(type="gitlab", auth_type="oauth2")), "oauth2 client id required"),
    ("rs-oauth2-client-secret", lambda w: ops.create_remote_source(w.state, rs(type="gitea", auth_type="oauth2", oauth2_client_id="x")), "oauth2 client secret required"),
    ("rs-duplicate", lambda w: ops.create_remote_source(w.state, rs(name="gitea01")), "remote source with name 'gitea01' already exists"),
    ("rs-update-missing", lambda w: ops.update_remote_source(w.state, "nors", rs()), "remote source 'nors' doesn't exist"),
    ("rs-update-duplicate", lambda w: ops.update_remote_source(w.state, "gitea01", rs(name="github01")), "remote source with name 'github01' already exists"),
    ("rs-update-wrong-auth", lambda w: ops.update_remote_source(w.state, "gitea01", rs(name="gitea01", type="github")), "doesn't support auth type 'password'"),
    ("rs-delete-used", lambda w: ops.delete_remote_source(w.state, "gitea01"), r"remote source 'gitea01' can't be deleted: it is used by 1 linked account\(s\) and 0 project\(s\)"),
    ("rs-delete-missing", lambda w: ops.delete_remote_source(w.state, "nors"), "remote source 'nors' doesn't exist"),
    # secrets and variables
    ("secret-parent-missing", lambda w: ops.create_secret(w.state, "project", "org/org01/nop", Secret(name="s1", type="internal", data={"a": "b"})),
     "project 'org/org01/nop' doesn't exist"),
    ("secret-parent-type", lambda w: ops.create_secret(w.state, "org", "org01", Secret(name="s1", type="internal", data={"a": "b"})), "invalid parent type 'org'"),
    ("secret-name", lambda w: ops.create_secret(w.state, "projectgroup", "org/org01", Secret(name="s 1", type="internal", data={"a": "b"})), "invalid secret name"),
    ("secret-type", lambda w: ops.create_secret(w.state, "projectgroup", "org/org01", Secret(name="s1", type="external", data={"a": "b"})), "invalid secret type 'external'"),
    ("secret-data", lambda w: ops.create_secret(w.state, "projectgroup", "org/org01", Secret(name="s1", type="internal")), "secret data required"),
    ("secret-update-missing", lambda w: ops.update_secret(w.state, "projectgroup", "org/org01", "nos", Secret(name="s1", type="internal", data={"a": "b"})),
     "secret with name 'nos' doesn't exist"),
    ("secret-delete-missing", lambda w: ops.delete_secret(w.state, "projectgroup", "org/org01", "nos"), "secret with name 'nos' doesn't exist"),
    ("variable-values", lambda w: ops.create_variable(w.state, "projectgroup", "org/org01", Variable(name="v1")), "variable values required"),
    ("variable-secret-name", lambda w: ops.create_variable(w.state, "projectgroup", "org/org01", Variable(name="v1", values=[VariableValue("", "k")])),
     r"variable values\[0\]: secret_name required"),
    ("variable-bad-regexp", lambda w: ops.create_variable(w.state, "projectgroup", "org/org01", Variable(name="v1", values=[
        VariableValue("s", "k", When(branch=WhenConditions(include=[WhenCondition("regexp", "(")])))])),
     "wrong regular expression"),
    ("variable-re2-lookahead", lambda w: ops.create_variable(w.state, "projectgroup", "org/org01", Variable(name="v1", values=[
        VariableValue("s", "k", When(branch=WhenConditions(include=[WhenCondition("regexp", "ma(?=ster)")])))])),
     r"invalid or unsupported Perl syntax: `\(\?=`"),
    ("variable-bad-cond-type", lambda w: ops.create_variable(w.state, "projectgroup", "org/org01", Variable(name="v1", values=[
        VariableValue("s", "k", When(ref=WhenConditions(exclude=[WhenCondition("glob", "x")])))])),
     r"when.ref.exclude\[0\]: invalid condition type 'glob'"),
    ("variable-delete-missing", lambda w: ops.delete_variable(w.state, "projectgroup", "org/org01", "nov"), "variable with name 'nov' doesn't exist"),
]


def _with(project: Project, **changes: Any) -> Project:
    import attrs

    return attrs.evolve(project, **changes)


@pytest.mark.parametrize("op,message", [pytest.param(op, msg, id=name) for name, op, msg in CASES])
def test_operation_failures(populated: World, op: Op, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        op(populated)


def test_duplicate_secret_and_variable_names(populated: World) -> None:
    w = populated
    w.secret("projectgroup", "org/org01", "s1", a="b")
    w.variable("projectgroup", "org/org01", "v1", VariableValue("s1", "a"))
    with pytest.raises(BadRequest, match="secret with name 's1' already exists at 'org/org01'"):
        w.secret("projectgroup", "org/org01", "s1", a="c")
    with pytest.raises(BadRequest, match="variable with name 'v1' already exists at 'org/org01'"):
        w.variable("projectgroup", "org/org01", "v1", VariableValue("s1", "a"))
    # the same names at another level are fine (they override)
    w.secret("project", "org/org01/group01/project01", "s1", a="c")
    w.variable("project", "org/org01/group01/project01", "v1", VariableValue("s1", "a"))
    w.secret("projectgroup", "org/org01", "s2", a="b")
    with pytest.raises(BadRequest, match="secret with name 's2' already exists"):
        ops.update_secret(w.state, "projectgroup", "org/org01", "s1", Secret(name="s2", type="internal", data={"a": "b"}))


def test_duplicate_token_name(populated: World) -> None:
    populated.run(ops.create_user_token(populated.state, "user01", "ci", populated.env))
    with pytest.raises(BadRequest, match="token 'ci' for user 'user01' already exists"):
        ops.create_user_token(populated.state, "user01", "ci", populated.env)
