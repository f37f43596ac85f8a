"""Orgs, members, project groups, projects, secrets and variables through the gateway, with the
permission rules of spec §6.1."""

from __future__ import annotations

import pytest

from agola.client import errors
from agola.client.types import (
    CreateOrgRequest,
    CreateProjectGroupRequest,
    CreateProjectRequest,
    CreateSecretRequest,
    CreateVariableRequest,
    UpdateProjectRequest,
    VariableValueRequest,
)
from tests.gateway.conftest import Env

# Through the configstore role over HTTP, and with its in-process handler (same interface).
pytestmark = pytest.mark.parametrize("env", ["http", "inprocess"], indirect=True)


async def test_orgs_and_members(env: Env) -> None:
    _alice, as_alice = await env.user("alice")
    _bob, as_bob = await env.user("bob")
    org = await as_alice.create_org(CreateOrgRequest("org01", "public"))
    assert org.name == "org01"
    members = await as_alice.list_org_members("org01")
    assert [(m.user.username, m.role) for m in members.members] == [("alice", "owner")]  # type: ignore[union-attr]

    with pytest.raises(errors.Forbidden):
        await as_bob.add_org_member("org01", "bob", "owner")
    added = await as_alice.add_org_member("org01", "bob", "member")
    assert added.role == "member" and added.user.username == "bob"  # type: ignore[union-attr]
    with pytest.raises(errors.Forbidden):
        await as_bob.delete_org("org01")

    private = await as_alice.create_org(CreateOrgRequest("secretorg", "private"))
    assert {o.name for o in await as_bob.list_orgs()} == {"org01"}
    with pytest.raises(errors.Forbidden):
        await as_bob.get_org(private.id)
    assert (await env.admin.get_org("secretorg")).visibility == "private"

    await as_alice.remove_org_member("org01", "bob")
    await as_alice.delete_org("org01")
    with pytest.raises(errors.NotExist):
        await as_alice.get_org("org01")


async def test_projects_visibility_and_ownership(env: Env) -> None:
    _alice, as_alice = await env.user("alice")
    _bob, as_bob = await env.user("bob")
    group = await as_alice.create_project_group(CreateProjectGroupRequest("team", "user/alice", "private"))
    assert group.path == "user/alice/team" and group.global_visibility == "private"
    project = await as_alice.create_project(CreateProjectRequest("app", "user/alice/team"))
    assert project.path == "user/alice/team/app" and project.global_visibility == "private"

    # Bob may neither see nor change alice's private things.
    with pytest.raises(errors.Forbidden):
        await as_bob.get_project("user/alice/team/app")
    with pytest.raises(errors.Forbidden):
        await as_bob.create_project(CreateProjectRequest("intruder", "user/alice/team"))
    with pytest.raises(errors.Forbidden):
        await as_bob.delete_project(project.id)
    assert await as_bob.list_project_group_subgroups("user/alice") == []
    assert [g.name for g in await as_alice.list_project_group_subgroups("user/alice")] == ["team"]

    # A remote-source project is for later; an anonymous caller cannot see a private project.
    with pytest.raises(errors.BadRequest, match="remote source"):
        await as_alice.create_project(CreateProjectRequest("gh", "user/alice", repo_path="a/b", remote_source_name="gh"))
    with pytest.raises(errors.Unauthorized):
        await env.client().get_project(project.id)

    renamed = await as_alice.update_project(project.id, UpdateProjectRequest(name="app2", visibility="public"))
    assert renamed.path == "user/alice/team/app2"
    # Public project in a private group: still private overall.
    assert renamed.global_visibility == "private"
    await as_alice.delete_project(project.id)
    await as_alice.delete_project_group("user/alice/team")
    with pytest.raises(errors.NotExist):
        await as_alice.get_project_group("user/alice/team")


async def test_secrets_and_variables_tree(env: Env) -> None:
    _alice, as_alice = await env.user("alice")
    _bob, as_bob = await env.user("bob")
    await as_alice.create_project_group(CreateProjectGroupRequest("team", "user/alice", "public"))
    await as_alice.create_project(CreateProjectRequest("app", "user/alice/team"))

    await as_alice.create_secret("projectgroup", "user/alice/team", CreateSecretRequest("creds", {"pw": "group"}))
    await as_alice.create_secret("project", "user/alice/team/app", CreateSecretRequest("creds", {"pw": "project"}))
    with pytest.raises(errors.Forbidden):
        await as_bob.create_secret("project", "user/alice/team/app", CreateSecretRequest("x", {"a": "b"}))

    tree = await as_alice.list_secrets("project", "user/alice/team/app", tree=True)
    assert [(s.name, s.parent_path) for s in tree] == [("creds", "user/alice/team/app"), ("creds", "user/alice/team")]
    nearest = await as_alice.list_secrets("project", "user/alice/team/app", tree=True, remove_overridden=True)
    assert [s.parent_path for s in nearest] == ["user/alice/team/app"]

    await as_alice.create_variable("projectgroup", "user/alice/team", CreateVariableRequest(
        "password", [VariableValueRequest("creds", "pw", {"branch": ["master", "/^release-/"]})]))
    (var,) = await as_alice.list_variables("project", "user/alice/team/app", tree=True)
    # A group's variable reads the group's secret, never the one of a project below it.
    assert var.values[0].matching_secret_parent_path == "user/alice/team"
    assert var.values[0].when["branch"]["include"] == [{"type": "simple", "match": "master"},
                                                       {"type": "regexp", "match": "^release-"}]
    with pytest.raises(errors.BadRequest):
        await as_alice.create_variable("project", "user/alice/team/app", CreateVariableRequest(
            "bad", [VariableValueRequest("creds", "pw", {"branch": "/(?=x)/"})]))

    # Bob sees the public project's secret names (never values) but cannot delete them.
    assert [s.name for s in await as_bob.list_secrets("project", "user/alice/team/app")] == ["creds"]
    with pytest.raises(errors.Forbidden):
        await as_bob.delete_secret("project", "user/alice/team/app", "creds")
    await as_alice.delete_variable("projectgroup", "user/alice/team", "password")
    await as_alice.delete_secret("project", "user/alice/team/app", "creds")
    assert [s.parent_path for s in await as_alice.list_secrets("project", "user/alice/team/app", tree=True)] == [
        "user/alice/team"]
