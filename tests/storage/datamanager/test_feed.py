"""The readdb feed: initial sync, following, restart from a saved sequence, resets on a new epoch."""

from __future__ import annotations

from agola.storage.datamanager import Action, DataManager
from tests.storage.datamanager.conftest import Stack
from tests.storage.datamanager.mirror import Mirror
from tests.support.waiting import wait_for


async def truth(dm: DataManager, datatypes: list[str]) -> dict[tuple[str, str], bytes]:
    out = {}
    for dt in datatypes:
        for e in await dm.list_objects(dt):
            out[(dt, e.id)] = e.data
    return out


async def converged(mirror: Mirror, dm: DataManager) -> bool:
    return mirror.synced and mirror.objects == await truth(dm, dm.datatypes)


async def write_some(dm: DataManager, start: int, n: int) -> None:
    for i in range(start, start + n):
        actions = [Action.put("user", f"u{i:03d}", f"v{i}".encode()), Action.put("org", f"o{i % 5}", f"{i}".encode())]
        if i % 4 == 3:
            actions.append(Action.delete("user", f"u{i - 2:03d}"))
        await dm.write_wal(actions)


async def test_feed_follows_writes_checkpoints_and_cleaners(stack: Stack) -> None:
    dm = await stack.open()
    await dm.start()
    await write_some(dm, 0, 10)
    mirror = Mirror()
    mirror.start(dm)
    await wait_for(lambda: converged(mirror, dm), timeout=20, message="initial sync")
    assert mirror.resets == 1
    await write_some(dm, 10, 25)
    await wait_for(lambda: converged(mirror, dm), timeout=20, message="follow")
    # Change groups come along with the data.
    token = await dm.get_change_groups_update_token(["g1"])
    new = await dm.write_wal([Action.put("project", "p1", b"x")], token)
    await wait_for(lambda: mirror.groups.get("g1") == new.change_groups_revisions["g1"], timeout=20)
    assert mirror.revision >= new.cur_revision
    await mirror.stop()
    assert mirror.resets == 1


async def test_feed_resumes_from_saved_sequence_without_reset(stack: Stack) -> None:
    dm = await stack.open()
    await dm.start()
    await write_some(dm, 0, 8)
    mirror = Mirror()
    mirror.start(dm)
    await wait_for(lambda: converged(mirror, dm), timeout=20)
    await mirror.stop()
    # While the consumer is down: more writes, checkpoints, etcd WAL cleaning.
    await write_some(dm, 8, 20)
    await dm.force_checkpoint()
    await dm.run_job(dm.etcd_wal_clean_job)
    mirror.start(dm)
    await wait_for(lambda: converged(mirror, dm), timeout=20, message="resume")
    assert mirror.resets == 1, "a consumer whose sequence is still in storage must not be reset"


async def test_feed_from_scratch_after_many_checkpoints(stack: Stack) -> None:
    dm = await stack.open()
    await dm.start()
    await write_some(dm, 0, 30)
    await dm.force_checkpoint()
    mirror = Mirror()
    mirror.start(dm)
    await wait_for(lambda: converged(mirror, dm), timeout=20)
    await mirror.stop()


async def test_new_epoch_resets_the_consumer(stack: Stack) -> None:
    dm = await stack.open()
    await dm.start()
    await write_some(dm, 0, 6)
    mirror = Mirror()
    mirror.start(dm)
    await wait_for(lambda: converged(mirror, dm), timeout=20)
    # Coordination is rebuilt from storage (as after a wiped etcd): a new epoch begins.
    await dm.force_checkpoint()
    await dm.init(force=True)
    await write_some(dm, 6, 3)
    await wait_for(lambda: mirror.resets == 2 and converged(mirror, dm), timeout=20, message="reset")
    await mirror.stop()
