"""Operations' success paths on an in-memory state: what each creates, changes and removes."""

from __future__ import annotations

import pytest

from agola.errors import BadRequest
from agola.services.configstore import changegroups as cg
from agola.services.configstore import ops
from agola.services.configstore.tokens import hash_token
from agola.services.configstore.tree import RunRef, run_variables
from agola.types.configstore import (
    CreateUserLARequest,
    Parent,
    Project,
    ProjectGroup,
    RemoteSource,
    Secret,
    UpdateUserLARequest,
    UpdateUserRequest,
    VariableValue,
    When,
    WhenCondition,
    WhenConditions,
)

from .world import NOW, World


def test_create_user_makes_a_public_root_group(world: World) -> None:
    user = world.user("user01")
    assert user.secret and not user.tokens
    root = world.state.project_group_by_ref("user/user01")
    assert root is not None and root.is_root and root.name == ""
    assert root.parent == Parent("user", user.id) and root.visibility == "public"
    assert world.state.user_by_ref(user.id) == user
    resp = world.state.project_group_response(root)
    assert (resp.path, resp.parent_path, resp.owner_type, resp.owner_id) == ("user/user01", "user/user01", "user", user.id)


def test_create_user_with_linked_account(world: World) -> None:
    rs = world.remote_source("gitea01")
    user = world.user("user01", CreateUserLARequest(remote_source_name="gitea01", remote_user_id="7", remote_user_name="u7",
                                                    user_access_token="pat"))
    (la,) = user.linked_accounts.values()
    assert (la.remote_source_id, la.remote_user_id, la.user_access_token) == (rs.id, "7", "pat")
    assert world.state.user_by_remote_user(rs.id, "7") == user
    assert world.state.user_by_linked_account(la.id) == user


def test_rename_user_enforces_both_name_change_groups(world: World) -> None:
    user = world.user("user01")
    plan = ops.update_user(world.state, "user01", UpdateUserRequest("user09"))
    assert cg.user_name("user09") in plan.change_groups
    assert cg.user_name("user01") in plan.change_groups
    world.run(plan)
    assert world.state.user_by_name("user09") == plan.result and world.state.user_by_name("user01") is None
    # paths follow the new name
    assert world.state.project_group_by_ref("user/user09") is not None
    assert plan.result.id == user.id


def test_tokens_are_shown_once_and_stored_hashed(world: World) -> None:
    world.user("user01")
    created = world.run(ops.create_user_token(world.state, "user01", "ci", world.env))
    token = created.token
    user = world.state.user_by_name("user01")
    assert user is not None
    assert user.tokens == {"ci": hash_token(token)}
    assert token not in str(user.to_json())
    assert world.state.user_by_token(token) == user
    assert world.state.user_by_token("wrong") is None
    world.run(ops.delete_user_token(world.state, "user01", "ci"))
    assert world.state.user_by_token(token) is None


def test_linked_account_update_and_delete(populated: World) -> None:
    w = populated
    user02 = w.state.user_by_name("user02")
    assert user02 is not None
    la_id = next(iter(user02.linked_accounts))
    la = w.run(ops.update_user_la(w.state, "user02", la_id, UpdateUserLARequest("43", "u2b", oauth2_access_token="tok")))
    assert (la.id, la.remote_user_id, la.oauth2_access_token) == (la_id, "43", "tok")
    w.run(ops.delete_user_la(w.state, "user02", la_id))
    assert w.state.user_by_linked_account(la_id) is None


def test_create_org_with_creator_owner_and_private_root(world: World) -> None:
    user = world.user("user01")
    org = world.org("org01", visibility="private", creator=user.id)
    assert org.created_at == NOW
    member = world.state.org_member(org.id, user.id)
    assert member is not None and member.member_role == "owner"
    root = world.state.project_group_by_ref("org/org01")
    assert root is not None and root.visibility == "private" and root.parent == Parent("org", org.id)


def test_org_members_add_update_remove(populated: World) -> None:
    w = populated
    m = w.run(ops.add_org_member(w.state, "org01", "user02", "member", w.env))
    assert m.member_role == "member"
    same = ops.add_org_member(w.state, "org01", "user02", "member", w.env)
    assert same.writes == () and same.result == m
    m2 = w.run(ops.add_org_member(w.state, "org01", "user02", "owner", w.env))
    assert (m2.id, m2.member_role) == (m.id, "owner")
    w.run(ops.remove_org_member(w.state, "org01", "user02"))
    org = w.state.org_by_name("org01")
    user = w.state.user_by_name("user02")
    assert org and user and w.state.org_member(org.id, user.id) is None


def test_paths_and_global_visibility(world: World) -> None:
    world.org("org01")
    g1 = world.group("org/org01", "group01", visibility="private")
    g2 = world.group(g1.id, "sub01")  # parent by id
    p = world.project("org/org01/group01/sub01", "project01")
    s = world.state
    assert s.group_path(g2.id) == "org/org01/group01/sub01"
    resp = s.project_response(p)
    assert (resp.path, resp.parent_path, resp.global_visibility) == (
        "org/org01/group01/sub01/project01", "org/org01/group01/sub01", "private")
    assert s.project_group_response(g2).global_visibility == "private"
    assert s.project_by_ref("org/org01/group01/sub01/project01") == p
    assert s.project_by_ref("org%2Forg01%2Fgroup01%2Fsub01%2Fproject01") == p
    assert s.project_by_ref(p.id) == p
    pub = world.group("org/org01", "pub01")
    assert s.project_group_response(pub).global_visibility == "public"
    world.org("org02", visibility="private")
    assert s.project_group_response(world.group("org/org02", "g1")).global_visibility == "private"


def test_move_and_rename_project_group(populated: World) -> None:
    w = populated
    sub = w.state.project_group_by_ref("org/org01/group01/sub01")
    assert sub is not None
    moved = w.run(ops.update_project_group(
        w.state, sub.id, ProjectGroup(name="moved01", parent=Parent("projectgroup", "org/org01"), visibility="private")))
    assert moved.id == sub.id
    assert w.state.group_path(sub.id) == "org/org01/moved01"
    assert w.state.project_group_by_ref("org/org01/group01/sub01") is None
    # a root group may change visibility only
    root = w.run(ops.update_project_group(
        w.state, "org/org01", ProjectGroup(parent=Parent("org", w.state.org_by_name("org01").id), visibility="private")))  # type: ignore[union-attr]
    assert root.visibility == "private" and root.name == ""


def test_move_project(populated: World) -> None:
    w = populated
    p = w.state.project_by_ref("org/org01/group01/project01")
    assert p is not None
    plan = ops.update_project(w.state, p.id, Project(name="renamed", parent=Parent("projectgroup", "user/user01/mygroup"),
                                                    visibility="public", remote_repository_config_type="manual"))
    assert cg.project_path("org/org01/group01/project01") in plan.change_groups
    assert cg.project_path("user/user01/mygroup/renamed") in plan.change_groups
    moved = w.run(plan)
    assert (moved.id, moved.secret, moved.webhook_secret) == (p.id, p.secret, p.webhook_secret)
    assert w.state.project_path(moved) == "user/user01/mygroup/renamed"


def test_create_project_generates_secrets_and_checks_repository(populated: World) -> None:
    w = populated
    user02 = w.state.user_by_name("user02")
    rs = w.state.remote_source_by_name("gitea01")
    assert user02 and rs
    la_id = next(iter(user02.linked_accounts))
    p = w.project("org/org01", "repo01", remote_repository_config_type="remotesource", remote_source_id=rs.id,
                  linked_account_id=la_id, repository_id="1", repository_path="owner/repo")
    assert p.secret and p.webhook_secret
    # now the linked account and the remote source are in use
    with pytest.raises(BadRequest, match="projects use it"):
        ops.delete_user_la(w.state, "user02", la_id)
    with pytest.raises(BadRequest, match="1 project"):
        ops.delete_remote_source(w.state, "gitea01")
    with pytest.raises(BadRequest, match="can't be deleted: projects use its linked accounts \\(org/org01/repo01\\)"):
        ops.delete_user(w.state, "user02")


def test_remote_source_update_keeps_id(populated: World) -> None:
    w = populated
    rs = w.state.remote_source_by_name("gitea01")
    assert rs is not None
    updated = w.run(ops.update_remote_source(w.state, "gitea01", RemoteSource(
        name="gitea02", api_url="http://127.0.0.1:3001", type="gitea", auth_type="oauth2",
        oauth2_client_id="c", oauth2_client_secret="s")))
    assert updated.id == rs.id and w.state.remote_source_by_ref(rs.id) == updated
    assert w.state.remote_source_by_name("gitea01") is None
    unused = w.remote_source("gitea03")
    w.run(ops.delete_remote_source(w.state, unused.id))
    assert w.state.remote_source_by_name("gitea03") is None


def _everything_below_org01(w: World) -> None:
    w.secret("projectgroup", "org/org01/group01", "gs", k="v")
    w.variable("projectgroup", "org/org01/group01/sub01", "gv", VariableValue("gs", "k"))
    w.secret("project", "org/org01/group01/project01", "ps", k="v")
    w.variable("project", "org/org01/group01/project01", "pv", VariableValue("ps", "k"))
    w.project("org/org01/group01/sub01", "deep01")


def test_delete_project_group_removes_everything_below(populated: World) -> None:
    w = populated
    _everything_below_org01(w)
    group = w.state.project_group_by_ref("org/org01/group01")
    sub = w.state.project_group_by_ref("org/org01/group01/sub01")
    assert group and sub
    plan = ops.delete_project_group(w.state, "org/org01/group01")
    # a concurrent create under any removed group conflicts with this delete
    assert cg.project_group_id(sub.id) in plan.change_groups
    w.run(plan)
    for kind in ("projectgroup", "project", "secret", "variable"):
        remaining = list(w.state.all(kind))
        assert all(getattr(o, "parent", Parent()).id not in (group.id, sub.id) for o in remaining), kind
    assert w.state.count("project") == 0
    assert w.state.count("secret") == 0 and w.state.count("variable") == 0
    # root groups and mygroup stay
    assert w.state.project_group_by_ref("org/org01") is not None
    assert w.state.project_group_by_ref("user/user01/mygroup") is not None


def test_delete_org_removes_its_tree_and_members(populated: World) -> None:
    w = populated
    _everything_below_org01(w)
    w.run(ops.add_org_member(w.state, "org01", "user02", "member", w.env))
    w.run(ops.delete_org(w.state, "org01"))
    assert w.state.org_by_name("org01") is None
    assert w.state.count("orgmember") == 0
    assert w.state.count("project") == 0 and w.state.count("secret") == 0 and w.state.count("variable") == 0
    # only the two users' root groups and user01's mygroup remain
    assert sorted(w.state.group_path(g.id) for g in w.state.all("projectgroup")) == [
        "user/user01", "user/user01/mygroup", "user/user02"]


def test_delete_user_removes_its_tree_and_memberships(populated: World) -> None:
    w = populated
    user01 = w.state.user_by_name("user01")
    assert user01
    w.project("user/user01/mygroup", "mine")
    w.secret("projectgroup", "user/user01", "s1", k="v")
    w.run(ops.delete_user(w.state, "user01"))
    assert w.state.user_by_name("user01") is None
    assert w.state.count("orgmember") == 0
    assert all(g.parent.id != user01.id for g in w.state.all("projectgroup"))
    assert sorted(w.state.group_path(g.id) for g in w.state.all("projectgroup")) == [
        "org/org01", "org/org01/group01", "org/org01/group01/sub01", "user/user02"]
    assert w.state.count("secret") == 0
    org = w.state.org_by_name("org01")
    assert org is not None and org.creator_user_id == ""


def test_delete_project_removes_its_secrets_and_variables(populated: World) -> None:
    w = populated
    _everything_below_org01(w)
    w.run(ops.delete_project(w.state, "org/org01/group01/project01"))
    assert [s.name for s in w.state.all("secret")] == ["gs"]
    assert [v.name for v in w.state.all("variable")] == ["gv"]


def test_creates_under_a_parent_take_the_parent_change_group(populated: World) -> None:
    w = populated
    group = w.state.project_group_by_ref("org/org01/group01")
    project = w.state.project_by_ref("org/org01/group01/project01")
    assert group and project
    p1 = ops.create_project_group(w.state, ProjectGroup(name="x1", parent=Parent("projectgroup", group.id), visibility="public"))
    assert cg.project_group_id(group.id) in p1.change_groups
    p2 = ops.create_secret(w.state, "project", project.id, Secret(name="s1", type="internal", data={"a": "b"}))
    assert cg.project_id(project.id) in p2.change_groups
    deletion = ops.delete_project_group(w.state, group.id)
    assert set(p1.change_groups) & set(deletion.change_groups)
    assert set(p2.change_groups) & set(deletion.change_groups)


def test_secrets_and_variables_tree_from_state_to_run_variables(populated: World) -> None:
    w = populated
    master = When(branch=WhenConditions(include=[WhenCondition("simple", "master")]))
    w.secret("projectgroup", "org/org01", "prod", password="root-prod")
    w.secret("projectgroup", "org/org01/group01", "prod", password="group-prod")
    w.secret("projectgroup", "org/org01/group01", "dev", password="group-dev")
    w.variable("projectgroup", "org/org01", "PASSWORD", VariableValue("prod", "password"))
    w.variable("project", "org/org01/group01/project01", "PASSWORD",
               VariableValue("prod", "password", master), VariableValue("dev", "password"))
    project = w.state.project_by_ref("org/org01/group01/project01")
    assert project is not None
    ptree = Parent("project", project.id)
    secrets = w.state.secrets_tree(ptree)
    assert [(s.secret.name, s.parent_path) for s in secrets] == [
        ("dev", "org/org01/group01"), ("prod", "org/org01/group01"), ("prod", "org/org01")]
    variables = w.state.variables_tree(ptree)
    assert [v.parent_path for v in variables] == ["org/org01/group01/project01", "org/org01"]
    assert w.state.variables_tree(ptree, tree=False)[0].parent_path == "org/org01/group01/project01"
    on_master = RunRef("branch", "refs/heads/master", branch="master")
    on_feature = RunRef("branch", "refs/heads/f", branch="f")
    assert run_variables(project, variables, secrets, on_master) == {"PASSWORD": "group-prod"}
    assert run_variables(project, variables, secrets, on_feature) == {"PASSWORD": "group-dev"}
    # the root-level variable alone only sees the root-level secret
    root_group = w.state.project_group_by_ref("org/org01")
    assert root_group is not None
    root_tree = Parent("projectgroup", root_group.id)
    assert run_variables(project, w.state.variables_tree(root_tree), secrets, on_master) == {"PASSWORD": "root-prod"}
