"""The configstore actions on a real datamanager (embedded + posix, and etcd + S3)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from agola.errors import BadRequest, NotExist
from agola.services.configstore.readdb import RESYNC_LOG
from agola.services.configstore.tree import RunRef
from agola.types.configstore import (
    CreateUserRequest,
    Organization,
    Parent,
    Project,
    ProjectGroup,
    RemoteSource,
    Secret,
    UpdateUserRequest,
    Variable,
    VariableValue,
    When,
    WhenCondition,
    WhenConditions,
)
from tests.support.logs import logged
from tests.support.waiting import wait_for

from .stack import Stack


async def test_objects_round_trip_through_the_datamanager(stack: Stack) -> None:
    cs = (await stack.open()).cs
    user = await cs.create_user(CreateUserRequest("user01"))
    token = await cs.create_user_token("user01", "ci")
    assert (await cs.get_user_by_token(token.token)).id == user.id
    with pytest.raises(NotExist):
        await cs.get_user_by_token("not-a-token")
    stored = await cs.get_user(user.id)
    assert token.token not in str(stored.to_json())

    org = await cs.create_org(Organization(name="org01", visibility="public", creator_user_id=user.id))
    assert [(r.organization.name, r.role) for r in await cs.get_user_orgs("user01")] == [("org01", "owner")]
    group = await cs.create_project_group(ProjectGroup(name="group01", parent=Parent("projectgroup", "org/org01"), visibility="private"))
    assert (group.path, group.global_visibility, group.owner_id) == ("org/org01/group01", "private", org.id)
    project = await cs.create_project(Project(name="project01", parent=Parent("projectgroup", "org/org01/group01"),
                                              visibility="public", remote_repository_config_type="manual"))
    assert project.path == "org/org01/group01/project01" and project.global_visibility == "private"
    assert (await cs.get_project("org%2Forg01%2Fgroup01%2Fproject01")).project.id == project.project.id

    await cs.create_secret("projectgroup", "org/org01", Secret(name="creds", type="internal", data={"pw": "root"}))
    await cs.create_secret("projectgroup", "org/org01/group01", Secret(name="creds", type="internal", data={"pw": "group"}))
    master = When(branch=WhenConditions(include=[WhenCondition("simple", "master")]))
    await cs.create_variable("project", "org/org01/group01/project01",
                             Variable(name="PW", values=[VariableValue("creds", "pw", master)]))
    tree = await cs.get_secrets("project", project.project.id, tree=True)
    assert [s.parent_path for s in tree] == ["org/org01/group01", "org/org01"]
    assert await cs.get_secrets("project", project.project.id) == []
    on_master = RunRef("branch", "refs/heads/master", branch="master")
    assert await cs.get_run_variables("org/org01/group01/project01", on_master) == {"PW": "group"}
    assert await cs.get_run_variables(project.project.id, RunRef("branch", "refs/heads/x", branch="x")) == {}

    rs = await cs.create_remote_source(RemoteSource(name="gitea01", api_url="http://127.0.0.1:3000", type="gitea", auth_type="password"))
    assert [r.id for r in await cs.list_remote_sources()] == [rs.id]

    await cs.delete_org("org01")
    with pytest.raises(NotExist):
        await cs.get_project(project.project.id)
    with pytest.raises(NotExist):
        await cs.get_org("org01")
    assert await cs.get_user_orgs("user01") == []
    assert stack.instances[0].readdb.state.count("secret") == 0


async def test_failures_are_typed(stack: Stack) -> None:
    cs = (await stack.open()).cs
    await cs.create_user(CreateUserRequest("user01"))
    with pytest.raises(BadRequest, match="already exists"):
        await cs.create_user(CreateUserRequest("user01"))
    with pytest.raises(NotExist):
        await cs.get_user("nouser")
    with pytest.raises(BadRequest, match="cannot delete root project group"):
        await cs.delete_project_group("user/user01")
    with pytest.raises(BadRequest, match="doesn't support auth type 'password'"):
        await cs.create_remote_source(RemoteSource(name="gh", api_url="http://127.0.0.1:1", type="github", auth_type="password"))


async def test_list_pagination(stack: Stack) -> None:
    cs = (await stack.open()).cs
    for i in range(25):
        await cs.create_user(CreateUserRequest(f"user{i:02d}"))
    page = await cs.list_users()
    assert [u.name for u in page] == [f"user{i:02d}" for i in range(10)]
    assert len(await cs.list_users(limit=100)) == 20
    page2 = await cs.list_users(start="user09", limit=3)
    assert [u.name for u in page2] == ["user10", "user11", "user12"]
    desc = await cs.list_users(limit=2, asc=False)
    assert [u.name for u in desc] == ["user24", "user23"]


async def test_two_instances_see_each_other_and_never_both_win_a_name(stack: Stack) -> None:
    a = (await stack.open()).cs
    b = (await stack.open()).cs
    user = await a.create_user(CreateUserRequest("user01"))
    await wait_for(lambda: b.readdb.state.user_by_name("user01") is not None, 10)
    assert (await b.get_user("user01")).id == user.id

    for round in range(3):
        name = f"race{round}"
        results = await asyncio.gather(
            a.create_user(CreateUserRequest(name)), b.create_user(CreateUserRequest(name)), return_exceptions=True
        )
        wins = [r for r in results if not isinstance(r, BaseException)]
        losses = [r for r in results if isinstance(r, BaseException)]
        assert len(wins) == 1, results
        assert len(losses) == 1 and isinstance(losses[0], BadRequest) and "already exists" in str(losses[0])

    # renames race for one new name too (the reference did not guard this)
    await a.create_user(CreateUserRequest("user02"))
    await wait_for(lambda: b.readdb.state.user_by_name("user02") is not None, 10)
    results = await asyncio.gather(
        a.update_user("user01", UpdateUserRequest("taken")), b.update_user("user02", UpdateUserRequest("taken")),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1, results


async def test_create_racing_a_parent_delete_leaves_no_orphan(stack: Stack) -> None:
    a = (await stack.open()).cs
    b = (await stack.open()).cs
    await a.create_user(CreateUserRequest("user01"))
    await a.create_project_group(ProjectGroup(name="group01", parent=Parent("projectgroup", "user/user01"), visibility="public"))
    await wait_for(lambda: b.readdb.state.project_group_by_ref("user/user01/group01") is not None, 10)
    results = await asyncio.gather(
        a.delete_project_group("user/user01/group01"),
        b.create_project(Project(name="p1", parent=Parent("projectgroup", "user/user01/group01"),
                                 visibility="public", remote_repository_config_type="manual")),
        return_exceptions=True,
    )
    await wait_for(lambda: a.readdb.revision >= b.readdb.revision, 10)
    state = a.readdb.state
    for project in state.all("project"):
        assert state.project_group(project.parent.id) is not None, (results, project)


async def test_a_new_instance_loads_everything_after_checkpoints(stack: Stack) -> None:
    first = await stack.open()
    for i in range(12):
        await first.cs.create_user(CreateUserRequest(f"user{i:02d}"))
    await first.dm.force_checkpoint()
    await first.cs.create_org(Organization(name="org01", visibility="private"))
    second = await stack.open()
    await wait_for(lambda: second.readdb.state.org_by_name("org01") is not None, 10)
    assert second.readdb.state.count("user") == 12
    assert (await second.cs.get_project_group("org/org01")).global_visibility == "private"


async def test_a_persisted_readdb_continues_where_it_stopped(
    stack: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agola")
    db_path = tmp_path / "readdb" / "db"
    first = await stack.open(db_path)
    assert logged(caplog, RESYNC_LOG), "a new readdb loads everything once"
    await first.cs.create_user(CreateUserRequest("user01"))
    await first.cs.create_org(Organization(name="org01", visibility="public"))
    await first.stop()

    writer = await stack.open()
    await writer.cs.create_user(CreateUserRequest("user02"))

    caplog.clear()
    again = await stack.open(db_path)
    # loaded from sqlite, then caught up incrementally: no full resync
    assert not logged(caplog, RESYNC_LOG)
    await wait_for(lambda: again.readdb.state.user_by_name("user02") is not None, 10)
    assert again.readdb.state.user_by_name("user01") is not None
    assert again.readdb.state.project_group_by_ref("org/org01") is not None
    user = await again.cs.create_user(CreateUserRequest("user03"))
    await wait_for(lambda: writer.readdb.state.user_by_name("user03") is not None, 10)
    assert (await writer.cs.get_user("user03")).id == user.id


async def test_concurrent_creates_under_one_parent_all_succeed(stack: Stack) -> None:
    """Creates under one parent share its change group: the losers are planned again and succeed."""
    a = (await stack.open()).cs
    b = (await stack.open()).cs
    await a.create_user(CreateUserRequest("user01"))
    await wait_for(lambda: b.readdb.state.project_group_by_ref("user/user01") is not None, 10)

    def project(name: str) -> Project:
        return Project(name=name, parent=Parent("projectgroup", "user/user01"), visibility="public",
                       remote_repository_config_type="manual")

    created = await asyncio.gather(*(cs.create_project(project(f"p{i}")) for i, cs in enumerate([a, b, a, b, a, b])))
    assert sorted(p.path for p in created) == [f"user/user01/p{i}" for i in range(6)]
    await wait_for(lambda: len(b.readdb.state.projects_in(b.readdb.state.project_group_by_ref("user/user01").id)) == 6, 10)  # type: ignore[union-attr]
