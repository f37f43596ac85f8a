"""Several configstore instances on one etcd + S3: shared writes, name races, restarts."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agola.errors import BadRequest, NotExist
from agola.types.configstore import CreateUserRequest, Organization, Parent, ProjectGroup
from tests.support.waiting import wait_for

from .conftest import Installation


async def test_instances_see_each_others_writes(distributed: Installation) -> None:
    a = await distributed.start()
    b = await distributed.start()
    user = await a.c.create_user(CreateUserRequest("user01"))

    async def seen_by_b() -> bool:
        try:
            return (await b.c.get_user("user01")).id == user.id
        except NotExist:
            return False

    await wait_for(seen_by_b, 10)
    # b writes under what a created; a sees it
    await b.c.create_org(Organization(name="org01", visibility="public", creator_user_id=user.id))
    await b.c.create_project_group(ProjectGroup(name="g1", parent=Parent("projectgroup", "user/user01"),
                                                visibility="public"))

    async def seen_by_a() -> bool:
        try:
            await a.c.get_project_group("user/user01/g1")
            return [o.organization.name for o in await a.c.get_user_orgs("user01")] == ["org01"]
        except NotExist:
            return False

    await wait_for(seen_by_a, 10)
    # a duplicate is refused whichever instance is asked, once it has seen the first write
    with pytest.raises(BadRequest, match="already exists"):
        await a.c.create_org(Organization(name="org01", visibility="public"))


async def test_name_races_have_one_winner(distributed: Installation) -> None:
    a = await distributed.start()
    b = await distributed.start()
    for round_ in range(4):
        name = f"racer{round_}"
        results = await asyncio.gather(
            a.c.create_user(CreateUserRequest(name)), b.c.create_user(CreateUserRequest(name)),
            a.c.create_org(Organization(name=name, visibility="public")),
            b.c.create_org(Organization(name=name, visibility="public")),
            return_exceptions=True,
        )
        users, orgs = results[:2], results[2:]
        for pair in (users, orgs):
            wins = [r for r in pair if not isinstance(r, BaseException)]
            losses = [r for r in pair if isinstance(r, BaseException)]
            assert len(wins) == 1, pair
            assert len(losses) == 1 and isinstance(losses[0], BadRequest) and "already exists" in str(losses[0])

    async def both_agree() -> bool:
        la = [u.name for u in await a.c.list_users(limit=20, asc=True)]
        lb = [u.name for u in await b.c.list_users(limit=20, asc=True)]
        return la == lb == [f"racer{i}" for i in range(4)]

    await wait_for(both_agree, 10)


async def test_restart_keeps_everything(installation: Installation) -> None:
    first = await installation.start()
    await first.c.create_user(CreateUserRequest("user01"))
    tok = await first.c.create_user_token("user01", "t1")
    await installation.close()
    again = await installation.start()
    assert (await again.c.get_user_by_token(tok.token)).name == "user01"
    await again.c.create_user(CreateUserRequest("user02"))
    assert [u.name for u in await again.c.list_users(asc=True)] == ["user01", "user02"]


async def test_group_races_leave_no_duplicate_and_no_orphan(distributed: Installation) -> None:
    a = await distributed.start()
    b = await distributed.start()
    await a.c.create_user(CreateUserRequest("user01"))
    await wait_for(lambda: b.c.get_user("user01"), 10)

    def group(parent: str, name: str) -> ProjectGroup:
        return ProjectGroup(name=name, parent=Parent("projectgroup", parent), visibility="public")

    results = await asyncio.gather(a.c.create_project_group(group("user/user01", "g1")),
                                   b.c.create_project_group(group("user/user01", "g1")), return_exceptions=True)
    assert sum(not isinstance(r, BaseException) for r in results) == 1, results
    for round_ in range(3):
        parent = (await a.c.create_project_group(group("user/user01", f"parent{round_}"))).project_group
        await wait_for(lambda: b.c.get_project_group(parent.id), 10)  # noqa: B023 - awaited in this iteration
        # b creates a child while a deletes the parent: either the child was created first and
        # went with its parent, or the create fails; never a child without its parent
        outcome = await asyncio.gather(b.c.create_project_group(group(parent.id, "child")),
                                       a.c.delete_project_group(parent.id), return_exceptions=True)
        assert not isinstance(outcome[1], BaseException), outcome
        for inst in (a, b):
            async def parent_gone(inst: Any = inst, parent_id: str = parent.id) -> bool:
                try:
                    await inst.c.get_project_group(parent_id)
                    return False
                except NotExist:
                    return True

            await wait_for(parent_gone, 10)
            with pytest.raises(NotExist):
                await inst.c.get_project_group(f"user/user01/parent{round_}/child")
        if not isinstance(outcome[0], BaseException):
            with pytest.raises(NotExist):
                await a.c.get_project_group(outcome[0].project_group.id)
