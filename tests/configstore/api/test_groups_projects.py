"""Project groups and projects through the REST API: paths, moves, cascades and every check."""

from __future__ import annotations

import attrs
import pytest

from agola.errors import BadRequest, NotExist
from agola.roleclients.configstore import ConfigstoreClient
from agola.types.configstore import (
    CreateUserLARequest,
    CreateUserRequest,
    Organization,
    Parent,
    Project,
    ProjectGroup,
    RemoteSource,
    Secret,
)


def group(parent: str, name: str, visibility: str = "public") -> ProjectGroup:
    return ProjectGroup(name=name, parent=Parent("projectgroup", parent), visibility=visibility)


def project(parent: str, name: str, visibility: str = "public", **kw: object) -> Project:
    kw.setdefault("remote_repository_config_type", "manual")
    return Project(name=name, parent=Parent("projectgroup", parent), visibility=visibility, **kw)  # type: ignore[arg-type]


async def setup_org(cs: ConfigstoreClient) -> None:
    user = await cs.create_user(CreateUserRequest("user01"))
    await cs.create_org(Organization(name="org01", visibility="public", creator_user_id=user.id))


async def test_groups_paths_and_listing(cs: ConfigstoreClient) -> None:
    await setup_org(cs)
    g1 = await cs.create_project_group(group("org/org01", "group01"))
    assert (g1.path, g1.parent_path, g1.owner_type, g1.global_visibility) == ("org/org01/group01", "org/org01", "org", "public")
    sub = await cs.create_project_group(group(g1.project_group.id, "sub01", "private"))
    assert sub.path == "org/org01/group01/sub01" and sub.global_visibility == "private"
    await cs.create_project_group(group("org/org01/group01", "asub"))
    # refs: id, path, escaped path in the URL
    assert (await cs.get_project_group("org/org01/group01/sub01")).project_group.id == sub.project_group.id
    assert (await cs.get_project_group(sub.project_group.id)).path == sub.path
    raw = await cs.json("GET", "/projectgroups/org%2Forg01%2Fgroup01%2Fsub01")
    assert raw["Path"] == "org/org01/group01/sub01" and raw["GlobalVisibility"] == "private"
    assert [g.project_group.name for g in await cs.get_project_group_subgroups("org/org01/group01")] == ["asub", "sub01"]
    p = await cs.create_project(project("org/org01/group01/sub01", "project01"))
    assert p.path == "org/org01/group01/sub01/project01" and p.global_visibility == "private"
    assert p.project.secret and p.project.webhook_secret  # generated
    assert [x.project.name for x in await cs.get_project_group_projects(sub.project_group.id)] == ["project01"]
    assert (await cs.get_project("org/org01/group01/sub01/project01")).project.id == p.project.id
    # sub-list paging
    raw = await cs.json("GET", "/projectgroups/org%2Forg01%2Fgroup01/subgroups", params={"limit": 1, "asc": "false"})
    assert [g["name"] for g in raw] == ["sub01"]
    with pytest.raises(BadRequest):
        await cs.json("GET", "/projectgroups/org%2Forg01/subgroups", params={"limit": "-2"})


async def test_group_failures(cs: ConfigstoreClient) -> None:
    await setup_org(cs)
    await cs.create_project_group(group("org/org01", "group01"))
    with pytest.raises(BadRequest, match="already exists"):
        await cs.create_project_group(group("org/org01", "group01"))
    with pytest.raises(BadRequest):
        await cs.create_project_group(group("org/org01", "group_01"))
    with pytest.raises(BadRequest, match="doesn't exist"):
        await cs.create_project_group(group("org/org01/nogroup", "sub01"))
    with pytest.raises(BadRequest, match="doesn't exist"):
        await cs.create_project_group(group("org/noorg", "sub01"))
    with pytest.raises(BadRequest, match="visibility"):
        await cs.create_project_group(group("org/org01", "group02", "hidden"))
    # root groups come with their user or org only
    with pytest.raises(BadRequest, match="root project group"):
        await cs.create_project_group(ProjectGroup(name="g", parent=Parent("org", "org01"), visibility="public"))
    with pytest.raises(NotExist):
        await cs.get_project_group("org/org01/nogroup")
    with pytest.raises(NotExist):
        await cs.get_project_group_subgroups("org/org01/nogroup")
    with pytest.raises(BadRequest, match="cannot delete root project group"):
        await cs.delete_project_group("org/org01")
    with pytest.raises((BadRequest, NotExist)):
        await cs.delete_project_group("org/org01/nogroup")


async def test_group_moves(cs: ConfigstoreClient) -> None:
    await setup_org(cs)
    g1 = (await cs.create_project_group(group("org/org01", "group01"))).project_group
    sub = (await cs.create_project_group(group("org/org01/group01", "sub01"))).project_group
    deep = (await cs.create_project_group(group("org/org01/group01/sub01", "deep01"))).project_group
    await cs.create_project_group(group("org/org01", "group02"))
    # into itself or its own descendant: refused
    with pytest.raises(BadRequest, match="inside itself or child"):
        await cs.update_project_group("org/org01/group01", attrs.evolve(g1, parent=Parent("projectgroup", deep.id)))
    with pytest.raises(BadRequest, match="inside itself or child"):
        await cs.update_project_group(g1.id, attrs.evolve(g1, parent=Parent("projectgroup", g1.id)))
    # a name taken under the new parent
    with pytest.raises(BadRequest, match="already exists"):
        await cs.update_project_group(g1.id, attrs.evolve(g1, name="group02"))
    # the root group keeps its parent and empty name
    root = (await cs.get_project_group("org/org01")).project_group
    with pytest.raises(BadRequest):
        await cs.update_project_group(root.id, attrs.evolve(root, name="named"))
    with pytest.raises(BadRequest):
        await cs.update_project_group(root.id, attrs.evolve(root, parent=Parent("projectgroup", g1.id)))
    # id mismatch
    with pytest.raises(BadRequest, match="different id"):
        await cs.update_project_group(g1.id, attrs.evolve(sub, parent=Parent("projectgroup", "org/org01")))
    # a valid move: sub01 (and what is below) now under group02, made private
    moved = await cs.update_project_group(sub.id, attrs.evolve(sub, parent=Parent("projectgroup", "org/org01/group02"),
                                                               visibility="private"))
    assert moved.path == "org/org01/group02/sub01"
    below = await cs.get_project_group(deep.id)
    assert below.path == "org/org01/group02/sub01/deep01" and below.global_visibility == "private"
    assert await cs.get_project_group_subgroups(g1.id) == []


async def test_delete_group_cascades(cs: ConfigstoreClient) -> None:
    await setup_org(cs)
    await cs.create_project_group(group("org/org01", "group01"))
    sub = await cs.create_project_group(group("org/org01/group01", "sub01"))
    p = await cs.create_project(project("org/org01/group01/sub01", "project01"))
    s = await cs.create_secret("project", p.project.id, Secret(name="s1", type="internal", data={"k": "v"}))
    await cs.delete_project_group("org/org01/group01")
    for get, ref in ((cs.get_project_group, sub.project_group.id), (cs.get_project, p.project.id)):
        with pytest.raises(NotExist):
            await get(ref)
    assert s.id  # the secret went with its project: its parent is gone
    with pytest.raises(NotExist):
        await cs.get_secrets("project", p.project.id)


async def test_projects(cs: ConfigstoreClient) -> None:
    await setup_org(cs)
    await cs.create_project_group(group("org/org01", "group01"))
    p = await cs.create_project(project("org/org01", "project01"))
    assert p.path == "org/org01/project01" and p.owner_type == "org"
    with pytest.raises(BadRequest, match="already exists"):
        await cs.create_project(project("org/org01", "project01"))
    with pytest.raises(BadRequest):
        await cs.create_project(project("org/org01", "project_01"))
    with pytest.raises(BadRequest, match="doesn't exist"):
        await cs.create_project(project("org/org01/nogroup", "project02"))
    with pytest.raises(BadRequest, match="visibility"):
        await cs.create_project(project("org/org01", "project02", "open"))
    with pytest.raises(BadRequest):
        await cs.create_project(project("org/org01", "project02", remote_repository_config_type="ftp"))
    # a remotesource project needs its linked account on that remote source
    with pytest.raises(BadRequest, match="required"):
        await cs.create_project(project("org/org01", "project02", remote_repository_config_type="remotesource"))
    # update: rename and move, and the checks
    moved = await cs.update_project("org/org01/project01", attrs.evolve(
        p.project, name="project01b", parent=Parent("projectgroup", "org/org01/group01"), visibility="private"))
    assert moved.path == "org/org01/group01/project01b" and moved.project.id == p.project.id
    assert moved.project.secret == p.project.secret  # generated secrets are kept
    with pytest.raises(NotExist):
        await cs.get_project("org/org01/project01")
    await cs.create_project(project("org/org01", "other"))
    with pytest.raises(BadRequest, match="already exists"):
        await cs.update_project(p.project.id, attrs.evolve(moved.project, name="other",
                                                           parent=Parent("projectgroup", "org/org01")))
    with pytest.raises(BadRequest, match="doesn't exist"):
        await cs.update_project(p.project.id, attrs.evolve(moved.project, parent=Parent("projectgroup", "org/org01/nope")))
    with pytest.raises((BadRequest, NotExist)):
        await cs.update_project("org/org01/nope", moved.project)
    await cs.delete_project(p.project.id)
    with pytest.raises(NotExist):
        await cs.get_project(p.project.id)
    with pytest.raises((BadRequest, NotExist)):
        await cs.delete_project(p.project.id)


async def test_remote_source_project_and_linked_account_guard(cs: ConfigstoreClient) -> None:
    gitea = await cs.create_remote_source(RemoteSource(name="gitea01", api_url="http://127.0.0.1:3000",
                                                       type="gitea", auth_type="password"))
    other = await cs.create_remote_source(RemoteSource(name="gitea02", api_url="http://127.0.0.1:3001",
                                                       type="gitea", auth_type="password"))
    user = await cs.create_user(CreateUserRequest("user01", CreateUserLARequest(
        remote_source_name="gitea01", remote_user_id="7", user_access_token="t")))
    [la] = user.linked_accounts
    base = dict(remote_repository_config_type="remotesource", linked_account_id=la,
                repository_id="17", repository_path="user01/repo")
    with pytest.raises(BadRequest, match="doesn't belong"):
        await cs.create_project(project("user/user01", "project01", remote_source_id=other.id, **base))
    p = await cs.create_project(project("user/user01", "project01", remote_source_id=gitea.id, **base))
    assert p.project.linked_account_id == la
    # what the project uses can't go away under it
    with pytest.raises(BadRequest, match="projects use it"):
        await cs.delete_user_la("user01", la)
    with pytest.raises(BadRequest, match="used by"):
        await cs.delete_remote_source("gitea01")
