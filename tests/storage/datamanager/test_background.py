"""Background jobs: bounded coordination and storage, change group compaction, outages survived."""

from __future__ import annotations

from pathlib import Path

import pytest

from agola.errors import Conflict
from agola.storage.coord.embedded import EmbeddedCoordination
from agola.storage.datamanager import Action, DataManager
from agola.storage.datamanager.snapshot import list_status_seqs
from agola.storage.datamanager.storagewals import list_storage_wal_objects
from agola.storage.datamanager.types import (
    CHANGEGROUPS_PREFIX,
    LAST_STORAGE_WAL_KEY,
    WALS_PREFIX,
    WalData,
    WalStatus,
    is_checkpointed,
)
from agola.storage.objectstorage.posix import PosixObjectStorage
from tests.storage.datamanager.conftest import DATATYPES, FAST, Stack
from tests.storage.datamanager.test_feed import truth, write_some
from tests.support.logs import logged
from tests.support.services import EtcdServer
from tests.support.waiting import wait_for


async def test_loops_checkpoint_and_clean_up(stack: Stack) -> None:
    dm = await stack.open()
    await dm.start()
    for round in range(4):
        await write_some(dm, round * 6, 6)
        await dm.force_checkpoint()
    expected = await truth(dm, dm.datatypes)

    async def bounded() -> bool:
        wals = (await dm.coord.range(WALS_PREFIX)).kvs
        statuses = await list_status_seqs(dm.ost, dm.paths)
        storage_wals = await list_storage_wal_objects(dm.ost, dm.paths)
        return len(wals) <= FAST.etcd_wals_keep and len(statuses) <= FAST.keep_data_statuses and len(storage_wals) < 24

    await wait_for(bounded, timeout=30, message="WALs checkpointed and cleaned")
    assert await truth(dm, dm.datatypes) == expected
    # Every data file left is referenced by a kept status (the old ones were cleaned).
    await dm.stop()
    await dm.run_job(dm.checkpoint_clean_job)
    referenced: set[str] = set()
    from agola.storage.datamanager.snapshot import read_status

    for seq in await list_status_seqs(dm.ost, dm.paths):
        referenced |= (await read_status(dm.ost, dm.paths, seq)).file_ids()
    files = {i.path.rsplit("/", 1)[1].rsplit(".", 1)[0] async for i in dm.ost.list("configdata/data/") if "/" in i.path[16:]}
    assert files == referenced


async def test_too_old_token_is_refused_after_change_group_compaction(embedded_stack: Stack) -> None:
    import attrs

    dm = await embedded_stack.open(attrs.evolve(FAST, change_group_compact_range=5))
    stale = await dm.get_change_groups_update_token(["g"])
    await dm.write_wal([Action.put("user", "x", b"1")], stale)
    for _ in range(10):
        await dm.run_job(dm.ping_job)
    await dm.run_job(dm.compact_change_groups_job)
    assert await dm.coord.get(CHANGEGROUPS_PREFIX + "g") is None, "compaction drops old change groups"
    # The group key is gone, so "absent" would match again: the min revision check refuses it.
    with pytest.raises(Conflict):
        await dm.write_wal([Action.put("user", "x", b"2")], stale)
    assert await dm.read_object("user", "x") == b"1"


async def test_loops_survive_an_etcd_outage(etcd_restartable: EtcdServer, tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    from agola.storage.coord.etcd import EtcdCoordination

    coord = EtcdCoordination([etcd_restartable.endpoint], "outage/", timeout=2.0)
    ost = PosixObjectStorage(tmp_path / "ost")
    dm = DataManager(coord, ost, "configdata", DATATYPES, FAST)
    try:
        await dm.init()
        await dm.start()
        await write_some(dm, 0, 5)
        etcd_restartable.stop()
        with pytest.raises(ConnectionError):  # agola.errors.Unavailable
            await dm.write_wal([Action.put("user", "down", b"")])
        await wait_for(lambda: logged(caplog, "loop pass failed") or logged(caplog, "datamanager init failed"),
                       timeout=20, message="loops report errors")
        etcd_restartable.start()

        async def writable() -> bool:
            await dm.write_wal([Action.put("user", "probe", b"")])  # Unavailable until reconnected
            return True

        await wait_for(writable, timeout=30, message="writes accepted again")
        await write_some(dm, 5, 10)
        await dm.write_wal([Action.put("user", "back", b"1")])
        await wait_for(lambda: _all_checkpointed(dm), timeout=30, message="loops recovered")
        assert await dm.read_object("user", "back") == b"1"
    finally:
        await dm.stop()
        await coord.close()
        await ost.close()


async def _all_checkpointed(dm: DataManager) -> bool:
    """Every WAL synced to storage (up to lastcommittedstoragewalseq: the sync job moves that key,
    not the WAL keys, which stay "committed" until a checkpoint folds them), and no more left
    unfolded than a checkpoint waits for."""
    kvs = (await dm.coord.range(WALS_PREFIX)).kvs
    stored_kv = await dm.coord.get(LAST_STORAGE_WAL_KEY)
    stored = stored_kv.value.decode() if stored_kv is not None else ""
    pending = [WalData.from_json(kv.value, kv.key) for kv in kvs if not is_checkpointed(kv.value)]
    unsynced = [w for w in pending if w.wal_status is WalStatus.COMMITTED and not (stored and w.wal_sequence <= stored)]
    return not unsynced and len(pending) < FAST.min_checkpoint_wals


async def test_two_embedded_handles_share_one_store(tmp_path: Path) -> None:
    """Two service instances in one process (same data dir) see each other's writes."""
    c1 = await EmbeddedCoordination.open(tmp_path / "c", "svc/")
    c2 = await EmbeddedCoordination.open(tmp_path / "c", "svc/")
    o = PosixObjectStorage(tmp_path / "o")
    a, b = DataManager(c1, o, "d", DATATYPES, FAST), DataManager(c2, o, "d", DATATYPES, FAST)
    try:
        await a.init()
        await b.init()
        await a.write_wal([Action.put("user", "1", b"a")])
        await b.write_wal([Action.put("user", "2", b"b")])
        assert await b.read_object("user", "1") == b"a"
        assert await a.read_object("user", "2") == b"b"
    finally:
        await c1.close()
        await c2.close()


async def test_loops_survive_unreachable_object_storage(embedded_stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    import os

    dm = await embedded_stack.open()
    await dm.start()
    await write_some(dm, 0, 4)
    base = embedded_stack.tmp / "ost"
    aside = embedded_stack.tmp / "ost-aside"
    os.rename(base, aside)
    base.write_bytes(b"storage gone")  # every path below it now fails
    try:
        with pytest.raises(Exception) as err:  # a large WAL needs storage before its commit
            await dm.write_wal([Action.put("user", "large", b"l" * 4096)])
        assert isinstance(err.value, (ConnectionError, OSError)) or getattr(err.value, "status", 0) >= 500
        # A small WAL commits in coordination alone; its sync to storage waits for storage.
        await dm.write_wal([Action.put("user", "small", b"s")])
        await wait_for(lambda: logged(caplog, "loop pass failed", loop="sync"), timeout=20, message="sync reports errors")
    finally:
        base.unlink()
        os.rename(aside, base)
    await wait_for(lambda: _all_checkpointed(dm), timeout=30, message="loops recovered")
    await dm.force_checkpoint()
    assert await dm.read_object("user", "small") == b"s"
    await dm.write_wal([Action.put("user", "large", b"l" * 4096)])
    assert await dm.read_object("user", "large") == b"l" * 4096


async def test_guarded_updates_skip_only_the_keys_that_moved(stack: Stack) -> None:
    """The jobs move many WAL keys per transaction; a key changed meanwhile (init, import) keeps
    its new value and the others of its transaction are still updated."""
    from agola.storage.coord.base import Delete, Op, Put
    from agola.storage.datamanager.guarded import GUARDED_CHUNK, apply_guarded

    coord = await stack.open_coord()
    keys = [f"guarded/{i:03d}" for i in range(GUARDED_CHUNK + 5)]
    mods = {k: await coord.put(k, b"old") for k in keys}
    await coord.put(keys[3], b"moved")  # in the first chunk
    updates: list[tuple[str, int, Op]] = [(k, mods[k], Put(k, b"new")) for k in keys[:-1]]
    updates.append((keys[-1], mods[keys[-1]], Delete(keys[-1])))
    assert await apply_guarded(coord, updates) == len(keys) - 1
    values = {kv.key: kv.value for kv in (await coord.range("guarded/")).kvs}
    assert values == {k: b"moved" if k == keys[3] else b"new" for k in keys[:-1]}
