"""Storage WAL layouts: segments of several WALs (written now) and the reference's one header + one
data file per WAL (written by earlier versions), read side by side; overlapping segments (a crash
between a segment's write and its record in coordination) are read once."""

from __future__ import annotations

import base64
import json

from agola.storage.coord.base import Compare, Put
from agola.storage.datamanager import DataManager
from agola.storage.datamanager.storagewals import (
    encode_segment,
    iter_storage_wals,
    list_storage_wal_objects,
    read_storage_wal_object,
    segment_name,
)
from agola.storage.datamanager.types import (
    LAST_STORAGE_WAL_KEY,
    WALS_PREFIX,
    Action,
    DataEntry,
    Seq,
    WalData,
    WalHeader,
    WalStatus,
    committed_wal_json,
    decode_wal_data,
    encode_wal_data,
    is_checkpointed,
    seq_strings,
)
from tests.storage.datamanager.conftest import Stack
from tests.storage.datamanager.mirror import Mirror
from tests.storage.datamanager.test_feed import converged, truth, write_some
from tests.support.waiting import wait_for


async def _old_sync(dm: DataManager) -> int:
    """What the sync job of the reference layout did: per WAL a data file, then its header, then
    the coordination value without its data."""
    synced = 0
    for kv in (await dm.coord.range(WALS_PREFIX)).kvs:
        wal = WalData.from_json(kv.value, kv.key)
        if wal.wal_status is not WalStatus.COMMITTED:
            continue
        assert wal.inline_data is not None
        await dm.ost.write(dm.paths.wal_data(wal.wal_data_file_id), wal.inline_data, persist=True)
        header = WalHeader(wal.wal_data_file_id, wal.previous_wal_sequence)
        await dm.ost.write(dm.paths.wal_header(wal.wal_sequence), header.to_json(), persist=True)
        stored = WalData(wal.wal_data_file_id, WalStatus.COMMITTED_STORAGE, wal.wal_sequence, wal.previous_wal_sequence)
        res = await dm.coord.txn([Compare.mod(kv.key, "==", kv.mod_revision)], [Put(kv.key, stored.to_json())])
        assert res.succeeded
        synced += 1
    return synced


async def _rebuild_gives(stack: Stack, expected: dict[tuple[str, str], bytes]) -> None:
    """A coordination rebuilt from storage alone serves the same data, and a new feed mirrors it."""
    rebuilt = await stack.open(init=False)
    assert await rebuilt.init(force=True)
    assert await truth(rebuilt, rebuilt.datatypes) == expected
    mirror = Mirror()
    mirror.start(rebuilt)
    await wait_for(lambda: converged(mirror, rebuilt), timeout=20, interval=0.1)
    await mirror.stop()


async def test_a_store_of_the_old_layout_is_read_and_continued_in_segments(stack: Stack) -> None:
    old = await stack.open()
    await write_some(old, 0, 3)
    assert await _old_sync(old) == 3
    mirror = Mirror()
    mirror.start(old)
    await wait_for(lambda: converged(mirror, old), timeout=20, interval=0.1)
    await mirror.stop()
    await write_some(old, 3, 8)
    assert await _old_sync(old) == 8
    await old.checkpointer.checkpoint(force=True)  # old-layout WAL keys point at data files
    await old.run_job(old.etcd_wal_clean_job)  # the mirror's WAL leaves coordination
    expected = await truth(old, old.datatypes)
    objects = await list_storage_wal_objects(old.ost, old.paths)
    assert objects and not any(o.is_segment for o in objects)

    # A new process on that store: reads, a feed resuming from a WAL only in storage (no reset).
    dm = await stack.open(init=False)
    assert await truth(dm, dm.datatypes) == expected
    mirror.start(dm)
    await wait_for(lambda: converged(mirror, dm), timeout=20, interval=0.1)
    assert mirror.resets == 1
    await mirror.stop()

    # New writes go to segments; a rebuild of coordination reads both layouts.
    await write_some(dm, 11, 6)
    assert await dm.run_job(dm.sync_job)
    objects = await list_storage_wal_objects(dm.ost, dm.paths)
    assert any(o.is_segment for o in objects) and not all(o.is_segment for o in objects)
    await _rebuild_gives(stack, await truth(dm, dm.datatypes))


async def test_overlapping_segments_are_read_once(embedded_stack: Stack) -> None:
    dm = await embedded_stack.open()
    await write_some(dm, 0, 5)
    await dm.run_job(dm.sync_job)
    [segment] = [o for o in await list_storage_wal_objects(dm.ost, dm.paths) if o.is_segment]
    wals = await read_storage_wal_object(dm.ost, dm.paths, segment)
    assert len(wals) == 5
    # As if a first pass wrote the first three WALs and crashed before recording them.
    first = wals[:3]
    name = segment_name(first[0].wal_sequence, first[-1].wal_sequence)
    await dm.ost.write(dm.paths.wal_segment(name), encode_segment([w.to_json() for w in first]), persist=True)
    seqs = [w.wal_sequence async for w in iter_storage_wals(dm.ost, dm.paths)]
    assert seqs == sorted(set(seqs)) and seqs[-5:] == [w.wal_sequence for w in wals]
    await _rebuild_gives(embedded_stack, await truth(dm, dm.datatypes))


async def _wal_keys(dm: DataManager) -> dict[str, tuple[int, WalData]]:
    return {kv.key: (kv.mod_revision, WalData.from_json(kv.value, kv.key))
            for kv in (await dm.coord.range(WALS_PREFIX)).kvs}


async def test_sync_moves_the_stored_mark_and_the_checkpoint_rewrites_each_wal_once(stack: Stack) -> None:
    """The sync job stores WALs without rewriting their keys (lastcommittedstoragewalseq says how
    far storage goes), from what this process committed or, when another instance's commits are
    interleaved, from coordination; the checkpoint then marks each key checkpointed, naming its
    segment, and every reader still finds the data."""
    dm, other = await stack.open(), await stack.open()
    await write_some(dm, 0, 4)
    await write_some(other, 4, 2)  # dm's own record of its commits now has a gap
    await write_some(dm, 6, 3)
    before = await _wal_keys(dm)
    assert await dm.run_job(dm.sync_job)
    after = await _wal_keys(dm)
    assert after == before  # no WAL key rewritten
    last = max(wal.wal_sequence for _, wal in after.values())
    stored = await dm.coord.get(LAST_STORAGE_WAL_KEY)
    assert stored is not None and stored.value.decode() == last
    in_storage = [w.wal_sequence async for w in iter_storage_wals(dm.ost, dm.paths)]
    assert in_storage == sorted(wal.wal_sequence for _, wal in after.values())  # the init's marker first

    await write_some(dm, 9, 5)  # contiguous: from dm's own record this time
    assert await dm.run_job(dm.sync_job)
    await write_some(dm, 14, 1)  # committed, not stored: the checkpoint stops before it
    expected = await truth(dm, dm.datatypes)
    await dm.checkpointer.checkpoint()
    wals = {wal.wal_sequence: wal for _, wal in (await _wal_keys(dm)).values()}
    newest = max(wals)
    assert wals[newest].wal_status is WalStatus.COMMITTED and wals[newest].inline_data is not None
    for seq, wal in wals.items():
        if seq != newest and wal.wal_status is not WalStatus.CHECKPOINTED:
            assert wal.wal_status is WalStatus.COMMITTED_STORAGE  # the init's marker
        if wal.wal_status is WalStatus.CHECKPOINTED:
            assert wal.inline_data is None
            # Small WALs name their segment; larger ones were written to their own data file.
            assert wal.segment or await dm.ost.exists(dm.paths.wal_data(wal.wal_data_file_id))

    # A fresh instance (nothing cached) reads the WALs from their segments; a rebuild from storage
    # and a new feed agree.
    fresh = await stack.open(init=False)
    assert await truth(fresh, fresh.datatypes) == expected
    mirror = Mirror()
    mirror.start(fresh)
    await wait_for(lambda: converged(mirror, fresh), timeout=20, interval=0.1)
    await mirror.stop()
    assert await dm.run_job(dm.sync_job)
    await _rebuild_gives(stack, expected)


def test_checkpointed_is_told_from_the_raw_value() -> None:
    # Actions whose text is the marker itself: inline data is base64, so it never shows.
    data = encode_wal_data([Action.put("user", "u1", b'{"WalStatus":"checkpointed"}')])
    for status in WalStatus:
        for wal in (WalData("f1", status, "s2", "s1", data), WalData("f1", status, "s2", "s1", None, "s2.s1")):
            assert is_checkpointed(wal.to_json()) is (status is WalStatus.CHECKPOINTED)


def test_the_writer_formats_wal_values_as_waldata_does() -> None:
    data = encode_wal_data([Action.put("user", "u\"1", "é".encode())])
    for inline in (data, b"", None):
        for previous in ("", "0000001lh2c7a-0000000000009"):
            wal = WalData("0123abcd", WalStatus.COMMITTED, "0000001lh2c7a-000000000000a", previous, inline)
            assert committed_wal_json(wal.wal_data_file_id, wal.wal_sequence, previous, inline) == wal.to_json()


def test_a_group_commit_numbers_its_wals_as_seq_does() -> None:
    for epoch, first, count in [(1, 0, 1), (1764000000, 30, 5), (7, 1023, 70), ((1 << 64) - 1, (1 << 64) - 40, 40)]:
        assert seq_strings(epoch, first, count) == [str(Seq(epoch, c)) for c in range(first, first + count)]


def test_actions_and_data_entries_are_encoded_as_compact_json() -> None:
    for data_type in ("user", 'q"x', "é\u2028\x01\\"):
        for id in ("u1", "\ud800x", "a/b\tc", "日本"):
            for action in (Action.put(data_type, id, b"xyz\x00\xff"), Action.delete(data_type, id)):
                doc = {"ActionType": action.action_type.value, "DataType": data_type, "ID": id,
                       "Data": base64.b64encode(action.data).decode() if action.data else None}
                assert action.to_json() == json.dumps(doc, separators=(",", ":")).encode()
                assert decode_wal_data(encode_wal_data([action]), "here") == [action]
            entry = DataEntry(id, data_type, b"xyz\x00\xff")
            doc = {"id": id, "data_type": data_type, "data": base64.b64encode(entry.data).decode()}
            assert entry.to_json() == json.dumps(doc, separators=(",", ":")).encode()
            assert DataEntry.from_line(entry.to_json(), "here") == entry
