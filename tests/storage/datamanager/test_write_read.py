"""Writes and reads: WAL commit, change group concurrency, snapshot merge, deletes (quirk 8)."""

from __future__ import annotations

import asyncio

import pytest

from agola.errors import BadRequest, Conflict, NotExist
from agola.storage.datamanager import (
    Action,
    ChangeGroupsUpdateToken,
    CorruptData,
    DataManager,
    NotInitialized,
)
from tests.storage.datamanager.conftest import FAST, Stack


def put(dt: str, id: str, data: bytes) -> Action:
    return Action.put(dt, id, data)


async def test_put_then_read_before_and_after_checkpoint(stack: Stack) -> None:
    dm = await stack.open()
    await dm.write_wal([put("user", "u1", b'{"name":"one"}'), put("org", "o1", b"org")])
    assert await dm.read_object("user", "u1") == b'{"name":"one"}'
    assert await dm.read_object("org", "o1") == b"org"
    await dm.force_checkpoint()
    assert await dm.read_object("user", "u1") == b'{"name":"one"}'
    with pytest.raises(NotExist):
        await dm.read_object("user", "missing")
    with pytest.raises(NotExist):
        await dm.read_object("project", "u1")


async def test_delete_is_visible_before_the_next_checkpoint(stack: Stack) -> None:
    dm = await stack.open()
    await dm.write_wal([put("user", "u1", b"v1")])
    await dm.force_checkpoint()
    await dm.write_wal([Action.delete("user", "u1")])
    # Quirk 8 of the reference: the snapshot still holds u1, the WAL deleting it is not folded yet.
    with pytest.raises(NotExist):
        await dm.read_object("user", "u1")
    assert [e.id for e in await dm.list_objects("user")] == []
    await dm.force_checkpoint()
    with pytest.raises(NotExist):
        await dm.read_object("user", "u1")


async def test_many_objects_across_checkpoints_and_file_splits(stack: Stack) -> None:
    dm = await stack.open()
    expected: dict[str, bytes] = {}
    for batch in range(6):
        actions = []
        for i in range(batch, 60, 3):
            id = f"id{i:03d}"
            if batch % 3 == 2 and i % 2 == 0:
                actions.append(Action.delete("user", id))
                expected.pop(id, None)
            else:
                data = f"{batch}-{i}".encode() * 20
                actions.append(put("user", id, data))
                expected[id] = data
        await dm.write_wal(actions)
        if batch % 2:
            await dm.force_checkpoint()
    listed = await dm.list_objects("user")
    assert [(e.id, e.data) for e in listed] == sorted(expected.items())
    for id, data in expected.items():
        assert await dm.read_object("user", id) == data
    status = await _latest_status(dm)
    assert len(status.files["user"]) > 1, "max_data_file_size=2048 must split the snapshot"


async def _latest_status(dm: DataManager):
    from agola.storage.datamanager.snapshot import latest_status

    status = await latest_status(dm.ost, dm.paths)
    assert status is not None
    return status


async def test_change_group_race_has_exactly_one_winner(stack: Stack) -> None:
    dm1 = await stack.open()
    dm2 = await stack.open(init=False)
    token = await dm1.get_change_groups_update_token(["username-alice"])
    results = await asyncio.gather(
        dm1.write_wal([put("user", "a1", b"first")], token),
        dm2.write_wal([put("user", "a2", b"second")], token),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, ChangeGroupsUpdateToken)]
    losers = [r for r in results if isinstance(r, Conflict)]
    assert len(winners) == 1 and len(losers) == 1, results
    # The returned token carries the group's new revision: writing with it succeeds once more.
    await dm1.write_wal([put("user", "a3", b"third")], winners[0])


async def test_stale_token_conflicts_and_fresh_token_succeeds(stack: Stack) -> None:
    dm = await stack.open()
    old = await dm.get_change_groups_update_token(["g"])
    await dm.write_wal([put("user", "x", b"1")], old)
    with pytest.raises(Conflict):
        await dm.write_wal([put("user", "x", b"2")], old)
    assert await dm.read_object("user", "x") == b"1"
    fresh = await dm.get_change_groups_update_token(["g"])
    await dm.write_wal([put("user", "x", b"3")], fresh)
    assert await dm.read_object("user", "x") == b"3"
    # Writers on unrelated groups never conflict.
    await dm.write_wal([put("user", "y", b"1")], ChangeGroupsUpdateToken(old.cur_revision, {"other": 0}))


async def test_concurrent_writers_without_groups_all_succeed(stack: Stack) -> None:
    dm1 = await stack.open()
    dm2 = await stack.open(init=False)
    await asyncio.gather(
        *(dm.write_wal([put("user", f"c{i}", str(i).encode())]) for i in range(20) for dm in ([dm1] if i % 2 else [dm2]))
    )
    objects = {e.id: e.data for e in await dm2.list_objects("user")}
    assert objects == {f"c{i}": str(i).encode() for i in range(20)}


async def test_bad_writes_are_rejected(embedded_stack: Stack) -> None:
    dm = await embedded_stack.open()
    with pytest.raises(BadRequest):
        await dm.write_wal([])
    with pytest.raises(BadRequest):
        await dm.write_wal([put("nosuchtype", "x", b"")])
    with pytest.raises(BadRequest):
        await dm.write_wal([put("user", "x", b"")], ChangeGroupsUpdateToken(0, {"bad/name": 0}))
    with pytest.raises(BadRequest):
        ChangeGroupsUpdateToken.decode("not a token")


async def test_write_before_init_is_refused(embedded_stack: Stack) -> None:
    dm = await embedded_stack.open(init=False)
    with pytest.raises(NotInitialized):
        await dm.write_wal([put("user", "x", b"")])


async def test_corrupt_wal_file_is_an_error_naming_it(stack: Stack) -> None:
    dm = await stack.open()
    await dm.write_wal([put("user", "x", b"1" * 1000)])  # above the inline size: a storage file
    [path] = [i.path async for i in dm.ost.list("configdata/wals/data/") if await dm.ost.read_all(i.path)]
    await dm.ost.write(path, b'{"ActionType": "put", "DataT')
    fresh = await stack.open(init=False)  # no cached decode
    with pytest.raises(CorruptData) as err:
        await fresh.read_object("user", "x")
    assert path in str(err.value)


async def test_corrupt_snapshot_file_is_an_error_naming_it(stack: Stack) -> None:
    dm = await stack.open()
    await dm.write_wal([put("user", "x", b"1")])
    await dm.force_checkpoint()
    status = await _latest_status(dm)
    path = dm.paths.data_file("user", status.files["user"][0].id)
    await dm.ost.write(path, b"garbage\n")
    fresh = await stack.open(init=False)
    with pytest.raises(CorruptData) as err:
        await fresh.read_object("user", "x")
    assert path in str(err.value)
    with pytest.raises(CorruptData):
        await fresh.list_objects("user")


async def test_large_and_many_concurrent_writes_commit_in_bounded_transactions(stack: Stack) -> None:
    """Big inline WALs written together are split over several transactions, none refused."""
    import attrs

    dm = await stack.open(attrs.evolve(FAST, inline_wal_max_bytes=200 * 1024))
    big = b"b" * (150 * 1024)
    await asyncio.gather(*(dm.write_wal([put("user", f"big{i}", big)]) for i in range(12)))
    for i in range(12):
        assert await dm.read_object("user", f"big{i}") == big


async def test_many_concurrent_writers_with_change_groups(stack: Stack) -> None:
    """More change groups than one etcd transaction may check: the writes are spread over several."""
    dm = await stack.open()
    tokens = [await dm.get_change_groups_update_token([f"g{i}-{j}" for j in range(4)]) for i in range(60)]
    await asyncio.gather(*(dm.write_wal([put("org", f"o{i}", b"x")], t) for i, t in enumerate(tokens)))
    assert len(await dm.list_objects("org")) == 60
