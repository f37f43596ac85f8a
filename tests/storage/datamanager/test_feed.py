"""The readdb feed: initial sync, following, restart from a saved sequence, resets on a new epoch."""

from __future__ import annotations

import asyncio
import logging
import os

import pytest

from agola.errors import Conflict
from agola.storage.datamanager import Action, DataManager
from tests.storage.datamanager.conftest import Stack
from tests.storage.datamanager.mirror import Mirror
from tests.support.logs import logged
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
    await wait_for(lambda: converged(mirror, dm), timeout=20, message="initial sync", interval=0.1)
    assert mirror.resets == 1
    await write_some(dm, 10, 25)
    await wait_for(lambda: converged(mirror, dm), timeout=20, message="follow", interval=0.1)
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
    await wait_for(lambda: converged(mirror, dm), timeout=20, interval=0.1)
    await mirror.stop()
    # While the consumer is down: more writes, checkpoints, etcd WAL cleaning.
    await write_some(dm, 8, 20)
    await dm.force_checkpoint()
    await dm.run_job(dm.etcd_wal_clean_job)
    mirror.start(dm)
    await wait_for(lambda: converged(mirror, dm), timeout=20, message="resume", interval=0.1)
    assert mirror.resets == 1, "a consumer whose sequence is still in storage must not be reset"


async def test_feed_from_scratch_after_many_checkpoints(stack: Stack) -> None:
    dm = await stack.open()
    await dm.start()
    await write_some(dm, 0, 30)
    await dm.force_checkpoint()
    mirror = Mirror()
    mirror.start(dm)
    await wait_for(lambda: converged(mirror, dm), timeout=20, interval=0.1)
    await mirror.stop()


async def test_new_epoch_resets_the_consumer(stack: Stack) -> None:
    dm = await stack.open()
    await dm.start()
    await write_some(dm, 0, 6)
    mirror = Mirror()
    mirror.start(dm)
    await wait_for(lambda: converged(mirror, dm), timeout=20, interval=0.1)
    # Coordination is rebuilt from storage (as after a wiped etcd): a new epoch begins.
    await dm.force_checkpoint()
    await dm.init(force=True)
    await write_some(dm, 6, 3)
    await wait_for(lambda: mirror.resets == 2 and converged(mirror, dm), timeout=20, message="reset", interval=0.1)
    await mirror.stop()


async def test_wiped_coordination_is_rebuilt_and_consumers_reset(stack: Stack) -> None:
    dm = await stack.open()
    await dm.start()
    await write_some(dm, 0, 8)
    await dm.force_checkpoint()  # what is only in coordination is lost with it
    expected = await truth(dm, dm.datatypes)
    mirror = Mirror()
    mirror.start(dm)
    await wait_for(lambda: converged(mirror, dm), timeout=20, interval=0.1)
    await dm.stop()
    await dm.coord.delete("", prefix=True)  # the whole service prefix: a wiped etcd
    restarted = await stack.open(init=False)
    await restarted.start()  # InitEtcd rebuilds coordination from storage under a new epoch
    await wait_for(lambda: mirror.resets == 2 and converged(mirror, restarted), timeout=30, message="reset", interval=0.1)
    assert mirror.objects == expected
    await restarted.write_wal([Action.put("user", "new", b"1")])
    await wait_for(lambda: mirror.objects.get(("user", "new")) == b"1", timeout=20)
    await mirror.stop()


async def test_two_instances_with_loops_stay_consistent(stack: Stack) -> None:
    """Two service instances (own coordination and storage clients), both running every job."""
    a, b = await stack.open(), await stack.open()
    await a.start()
    await b.start()
    mirrors = [Mirror(), Mirror()]
    mirrors[0].start(a)
    mirrors[1].start(b)
    await asyncio.gather(write_some(a, 0, 15), write_some(b, 100, 15))
    token = await a.get_change_groups_update_token(["shared"])
    results = await asyncio.gather(
        a.write_wal([Action.put("project", "p", b"a")], token),
        b.write_wal([Action.put("project", "p", b"b")], token),
        return_exceptions=True,
    )
    assert sum(isinstance(r, Conflict) for r in results) == 1, results
    for m, dm in zip(mirrors, (a, b)):
        await wait_for(lambda: converged(m, dm), timeout=30, interval=0.1)  # noqa: B023 - awaited in this iteration
    assert mirrors[0].objects == mirrors[1].objects == await truth(a, a.datatypes) == await truth(b, b.datatypes)
    for m in mirrors:
        await m.stop()


async def test_a_feed_error_is_logged_and_the_feed_recovers(embedded_stack: Stack,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    dm = await embedded_stack.open()
    await dm.start()
    await write_some(dm, 0, 4)
    await dm.force_checkpoint()  # a new consumer starts from the snapshot in object storage
    base = embedded_stack.tmp / "ost"
    aside = embedded_stack.tmp / "ost-aside"
    os.rename(base, aside)
    base.write_bytes(b"storage gone")  # every path below it now fails
    mirror = Mirror()
    mirror.start(dm)
    try:
        # Unreadable storage lists no snapshot: expected for INIT_GRACE seconds, an error past it.
        await wait_for(lambda: logged(caplog, "readdb feed error"), timeout=30, message="the feed error logged")
        assert not mirror.synced
    finally:
        base.unlink()
        os.rename(aside, base)
    await wait_for(lambda: converged(mirror, dm), timeout=30, message="the feed recovered", interval=0.1)
    await mirror.stop()


async def test_expected_states_at_startup_and_shutdown_log_no_warning(embedded_stack: Stack,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """A readdb follows the feed from the moment its service starts, before the datamanager is
    initialised, and may still be following when coordination closes at shutdown: neither is an
    error worth a warning (real errors are: see the test above)."""
    caplog.set_level(logging.DEBUG, logger="agola.storage.datamanager")
    dm = await embedded_stack.open(init=False)
    mirror = Mirror()
    mirror.start(dm)
    await wait_for(lambda: logged(caplog, "readdb feed waiting for the datamanager to be initialised"),
                   timeout=20, message="the feed waits for init")
    await dm.init()
    await dm.start()
    await write_some(dm, 0, 3)
    await wait_for(lambda: converged(mirror, dm), timeout=30, message="the feed caught up", interval=0.1)
    await dm.stop()
    await dm.coord.close()  # under the running feed, as a stop racing its readdb would
    await wait_for(lambda: logged(caplog, "readdb feed: coordination closed"), timeout=20,
                   message="the feed met the closed store")
    await mirror.stop()
    waiting = logged(caplog, "readdb feed waiting for the datamanager to be initialised")
    assert [r.levelno for r in waiting][:1] == [logging.INFO] and all(r.levelno == logging.DEBUG for r in waiting[1:])
    warnings = [r.getMessage() for r in caplog.records
                if r.name.startswith("agola.storage") and r.levelno >= logging.WARNING]
    assert warnings == []
