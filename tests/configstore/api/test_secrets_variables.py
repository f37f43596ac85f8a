"""Secrets and variables through the REST API: per level, along the tree, overriding, and a run's
variables resolved from what the API lists (as the gateway does)."""

from __future__ import annotations

import attrs
import pytest

from agola.errors import BadRequest, NotExist
from agola.roleclients.configstore import ConfigstoreClient
from agola.services.configstore.tree import RunRef, run_variables
from agola.types.configstore import (
    CreateUserRequest,
    Organization,
    Parent,
    Project,
    ProjectGroup,
    Secret,
    Variable,
    VariableValue,
    When,
    WhenCondition,
    WhenConditions,
)

PROJECT = "org/org01/group01/project01"


def when(kind: str, *matches: str, regexp: bool = False, exclude: tuple[str, ...] = ()) -> When:
    typ = "regexp" if regexp else "simple"
    conds = WhenConditions(include=[WhenCondition(typ, m) for m in matches],
                           exclude=[WhenCondition(typ, m) for m in exclude])
    return When(**{kind: conds})


def secret(name: str, **data: str) -> Secret:
    return Secret(name=name, type="internal", data=data)


async def tree_setup(cs: ConfigstoreClient) -> Project:
    user = await cs.create_user(CreateUserRequest("user01"))
    await cs.create_org(Organization(name="org01", visibility="public", creator_user_id=user.id))
    await cs.create_project_group(ProjectGroup(name="group01", parent=Parent("projectgroup", "org/org01"),
                                               visibility="public"))
    p = await cs.create_project(Project(name="project01", parent=Parent("projectgroup", "org/org01/group01"),
                                        visibility="public", remote_repository_config_type="manual"))
    return p.project


async def test_secrets_crud_and_checks(cs: ConfigstoreClient) -> None:
    await tree_setup(cs)
    s = await cs.create_secret("projectgroup", "org/org01", secret("creds", user="u", password="p"))
    assert s.id and s.parent.type == "projectgroup"
    listed = await cs.get_secrets("projectgroup", "org/org01")
    assert [(x.secret.name, x.parent_path, x.secret.data) for x in listed] == [("creds", "org/org01", {"user": "u", "password": "p"})]
    with pytest.raises(BadRequest, match="already exists"):
        await cs.create_secret("projectgroup", "org/org01", secret("creds", a="b"))
    # the same name at another level is fine
    await cs.create_secret("project", PROJECT, secret("creds", password="near"))
    with pytest.raises(BadRequest):
        await cs.create_secret("project", PROJECT, secret("bad name", a="b"))
    with pytest.raises(BadRequest, match="data required"):
        await cs.create_secret("project", PROJECT, Secret(name="empty", type="internal"))
    with pytest.raises(BadRequest, match="internal"):
        await cs.create_secret("project", PROJECT, Secret(name="ext", type="external", data={"a": "b"}))
    with pytest.raises(BadRequest, match="doesn't exist"):
        await cs.create_secret("project", "org/org01/group01/nope", secret("x1", a="b"))
    with pytest.raises(NotExist):
        await cs.get_secrets("projectgroup", "org/org01/nope")
    updated = await cs.update_secret("projectgroup", "org/org01", "creds", secret("creds2", password="q"))
    assert updated.id == s.id and updated.name == "creds2"
    with pytest.raises(BadRequest, match="doesn't exist"):
        await cs.update_secret("projectgroup", "org/org01", "creds", secret("creds", password="q"))
    await cs.delete_secret("projectgroup", "org/org01", "creds2")
    with pytest.raises(BadRequest, match="doesn't exist"):
        await cs.delete_secret("projectgroup", "org/org01", "creds2")
    # only projects and project groups have secrets
    with pytest.raises(BadRequest):
        await cs.get_secrets("org", "org01")
    with pytest.raises(NotExist):
        await cs.json("GET", "/orgs/org01/secrets")


async def test_variables_crud_and_checks(cs: ConfigstoreClient) -> None:
    await tree_setup(cs)
    v = await cs.create_variable("project", PROJECT, Variable(name="PW", values=[VariableValue("creds", "pw")]))
    assert v.id
    with pytest.raises(BadRequest, match="already exists"):
        await cs.create_variable("project", PROJECT, Variable(name="PW", values=[VariableValue("creds", "pw")]))
    with pytest.raises(BadRequest, match="values required"):
        await cs.create_variable("project", PROJECT, Variable(name="EMPTY"))
    with pytest.raises(BadRequest, match="secret_var"):
        await cs.create_variable("project", PROJECT, Variable(name="NOVAR", values=[VariableValue("creds", "")]))
    with pytest.raises(BadRequest, match="regular expression"):
        await cs.create_variable("project", PROJECT, Variable(
            name="BADRE", values=[VariableValue("creds", "pw", when("branch", "(", regexp=True))]))
    with pytest.raises(BadRequest, match="doesn't exist"):
        await cs.create_variable("projectgroup", "org/org01/nope", Variable(name="X1", values=[VariableValue("a", "b")]))
    updated = await cs.update_variable("project", PROJECT, "PW", attrs.evolve(v, values=[VariableValue("creds", "pw2")]))
    assert updated.values[0].secret_var == "pw2"
    [listed] = await cs.get_variables("project", PROJECT)
    assert listed.variable.values[0].secret_var == "pw2" and listed.parent_path == PROJECT
    await cs.delete_variable("project", PROJECT, "PW")
    assert await cs.get_variables("project", PROJECT) == []
    with pytest.raises(BadRequest, match="doesn't exist"):
        await cs.delete_variable("project", PROJECT, "PW")


async def test_tree_listing_and_removeoverridden(cs: ConfigstoreClient) -> None:
    p = await tree_setup(cs)
    await cs.create_secret("projectgroup", "org/org01", secret("creds", pw="root"))
    await cs.create_secret("projectgroup", "org/org01", secret("other", k="v"))
    await cs.create_secret("projectgroup", "org/org01/group01", secret("creds", pw="group"))
    await cs.create_secret("project", p.id, secret("zeta", pw="project"))
    tree = await cs.get_secrets("project", p.id, tree=True)
    assert [(s.secret.name, s.parent_path) for s in tree] == [
        ("zeta", PROJECT), ("creds", "org/org01/group01"), ("creds", "org/org01"), ("other", "org/org01")]
    raw = await cs.json("GET", f"/projects/{p.id}/secrets", params={"tree": "", "removeoverridden": ""})
    assert [(s["name"], s["ParentPath"]) for s in raw] == [
        ("zeta", PROJECT), ("creds", "org/org01/group01"), ("other", "org/org01")]
    # a limit keeps the tree's order; start/asc make no sense there
    raw = await cs.json("GET", f"/projects/{p.id}/secrets", params={"tree": "", "limit": 2})
    assert [s["name"] for s in raw] == ["zeta", "creds"]
    with pytest.raises(BadRequest, match="tree"):
        await cs.json("GET", f"/projects/{p.id}/secrets", params={"tree": "", "start": "a"})
    with pytest.raises(BadRequest, match="needs tree"):
        await cs.json("GET", f"/projects/{p.id}/secrets", params={"removeoverridden": ""})
    # one level, paged by name
    raw = await cs.json("GET", "/projectgroups/org%2Forg01/secrets", params={"start": "creds"})
    assert [s["name"] for s in raw] == ["other"]
    raw = await cs.json("GET", "/projectgroups/org%2Forg01/secrets", params={"asc": "false", "limit": 1})
    assert [s["name"] for s in raw] == ["other"]
    # from a group: its level and above only
    assert [s.parent_path for s in await cs.get_secrets("projectgroup", "org/org01/group01", tree=True)] == [
        "org/org01/group01", "org/org01", "org/org01"]


async def test_run_variables_resolved_from_the_api(cs: ConfigstoreClient) -> None:
    p = await tree_setup(cs)
    await cs.create_secret("projectgroup", "org/org01", secret("creds", pw="root", token="tok-root"))
    await cs.create_secret("projectgroup", "org/org01/group01", secret("creds", pw="group"))
    await cs.create_secret("project", p.id, secret("below", pw="project-only"))
    # values chosen by `when`: first matching wins
    await cs.create_variable("projectgroup", "org/org01/group01", Variable(name="PW", values=[
        VariableValue("creds", "pw", when("branch", "master")),
        VariableValue("creds", "token", when("tag", "v.*", regexp=True)),
        VariableValue("nosuch", "pw", when("branch", "dev")),
        VariableValue("creds", "pw", when("branch", ".*", regexp=True)),
    ]))
    # the project level overrides a group variable of the same name
    await cs.create_variable("project", p.id, Variable(name="OVER", values=[VariableValue("creds", "pw")]))
    await cs.create_variable("projectgroup", "org/org01", Variable(name="OVER", values=[VariableValue("creds", "token")]))
    # a secret defined below the variable's level is never used
    await cs.create_variable("projectgroup", "org/org01", Variable(name="BELOW", values=[VariableValue("below", "pw")]))
    # excluded branches
    await cs.create_variable("project", p.id, Variable(name="NOTDEV", values=[
        VariableValue("creds", "pw", when("branch", ".*", regexp=True, exclude=("dev",)))]))

    async def resolve(run: RunRef, project: Project = p) -> dict[str, str]:
        variables = await cs.get_variables("project", project.id, tree=True)
        secrets = await cs.get_secrets("project", project.id, tree=True)
        return run_variables(project, variables, secrets, run)

    master = RunRef("branch", "refs/heads/master", branch="master")
    assert await resolve(master) == {"PW": "group", "OVER": "group", "NOTDEV": "group"}
    tag = RunRef("tag", "refs/tags/v1.0", tag="v1.0")
    # the tag matches PW's second value (token): the group's creds secret has no "token" key,
    # and the nearest visible secret named creds wins, so the variable is not set
    assert await resolve(tag) == {"OVER": "group"}
    # dev: the first matching value's secret is missing, later values are not tried
    dev = RunRef("branch", "refs/heads/dev", branch="dev")
    assert await resolve(dev) == {"OVER": "group"}
    feature = RunRef("branch", "refs/heads/feature", branch="feature")
    assert await resolve(feature) == {"PW": "group", "OVER": "group", "NOTDEV": "group"}
    # pull requests from forks get nothing, unless the project allows it
    fork = RunRef("pull_request", "refs/pull/1/head", pull_request_from_same_repo=False)
    same = RunRef("pull_request", "refs/pull/2/head", pull_request_from_same_repo=True)
    assert await resolve(fork) == {}
    assert "OVER" in await resolve(same)
    allowed = (await cs.update_project(p.id, attrs.evolve(p, pass_vars_to_forked_pr=True))).project
    assert allowed.pass_vars_to_forked_pr
    assert await resolve(fork, allowed) == await resolve(same, allowed)
