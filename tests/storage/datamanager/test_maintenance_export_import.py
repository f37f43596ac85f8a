"""Maintenance mode, export and import."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from agola.errors import BadRequest
from agola.storage.datamanager import Action
from tests.storage.datamanager.conftest import Stack
from tests.storage.datamanager.mirror import Mirror
from tests.storage.datamanager.test_feed import converged, truth, write_some
from tests.support.waiting import wait_for


async def collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


async def chunks(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_maintenance_toggle_and_watcher(embedded_stack: Stack) -> None:
    dm = await embedded_stack.open()
    other = await embedded_stack.open(init=False)  # another instance of the service
    seen: list[bool] = []

    async def watch() -> None:
        async for state in other.maintenance_watcher(retry_interval=0.05):
            seen.append(state)

    task = asyncio.create_task(watch())
    await wait_for(lambda: seen == [False])
    await dm.enable_maintenance()
    with pytest.raises(BadRequest, match="already enabled"):
        await dm.enable_maintenance()
    await wait_for(lambda: seen == [False, True])
    assert await other.is_maintenance_enabled()
    await dm.disable_maintenance()
    with pytest.raises(BadRequest, match="already disabled"):
        await dm.disable_maintenance()
    await wait_for(lambda: seen == [False, True, False])
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_import_requires_maintenance(embedded_stack: Stack) -> None:
    dm = await embedded_stack.open()
    with pytest.raises(BadRequest, match="not in maintenance mode"):
        await dm.import_data(chunks(b""))


async def test_export_is_self_describing_sorted_and_complete(stack: Stack) -> None:
    dm = await stack.open()
    await write_some(dm, 0, 12)  # some of it only in WALs: export must checkpoint first
    data = await collect(dm.export_data())
    lines = [json.loads(line) for line in data.splitlines()]
    assert lines[0] == {"format": "agola-datamanager-export", "version": 1, "datatypes": dm.datatypes}
    entries = lines[1:]
    types = [e["data_type"] for e in entries]
    assert types == sorted(types, key=dm.datatypes.index)
    for dt in set(types):
        ids = [e["id"] for e in entries if e["data_type"] == dt]
        assert ids == sorted(ids)
    import base64

    exported = {(e["data_type"], e["id"]): base64.b64decode(e["data"]) for e in entries}
    assert exported == await truth(dm, dm.datatypes)


async def test_import_replaces_data_and_readers_resync(stack: Stack) -> None:
    dm = await stack.open()
    await dm.start()
    await write_some(dm, 0, 10)
    archive = await collect(dm.export_data())
    expected = await truth(dm, dm.datatypes)
    await write_some(dm, 10, 10)
    await dm.write_wal([Action.put("project", "later", b"gone after import")])
    mirror = Mirror()
    mirror.start(dm)
    await wait_for(lambda: converged(mirror, dm), timeout=30, interval=0.1)
    await dm.stop()  # maintenance mode: the service stops its loops

    await dm.enable_maintenance()
    assert await dm.import_data(chunks(archive, 1000)) == len(expected)
    await dm.disable_maintenance()
    assert await truth(dm, dm.datatypes) == expected
    await wait_for(lambda: mirror.resets == 2 and converged(mirror, dm), timeout=30, message="reset", interval=0.1)
    assert mirror.objects == expected
    # Life goes on after the import: writes, checkpoints, the feed.
    await dm.start()
    await dm.write_wal([Action.put("project", "after", b"1")])
    await dm.force_checkpoint()
    assert await dm.read_object("project", "after") == b"1"
    await wait_for(lambda: converged(mirror, dm), timeout=30, interval=0.1)
    await mirror.stop()


async def test_import_into_a_fresh_deployment(stack: Stack, tmp_path) -> None:
    src = await stack.open()
    await write_some(src, 0, 8)
    archive = await collect(src.export_data())
    target_stack = Stack(stack.kind, tmp_path / "target", stack.request)
    try:
        target = await target_stack.open(init=False)
        await target.enable_maintenance()
        await target.import_data(chunks(archive))
        await target.disable_maintenance()
        assert await truth(target, target.datatypes) == await truth(src, src.datatypes)
    finally:
        await target_stack.close()


@pytest.mark.parametrize(
    "body, message",
    [
        (b'{"id":"b","data_type":"user","data":""}\n{"id":"a","data_type":"user","data":""}\n', "line 2: id 'a'"),
        (
            b'{"id":"a","data_type":"user","data":""}\n{"id":"a","data_type":"org","data":""}\n'
            b'{"id":"b","data_type":"user","data":""}\n',
            "line 3: data type 'user' appears again",
        ),
        (b'{"id":"a","data_type":"nope","data":""}\n', "line 1: unknown data type"),
        (b'{"id":"a","data_type":"user","data":""}\n{not json\n', "line 2: invalid JSON"),
        (b'{"format":"something-else","version":1}\n', "unsupported format"),
    ],
)
async def test_bad_import_is_rejected_and_changes_nothing(embedded_stack: Stack, body: bytes, message: str) -> None:
    dm = await embedded_stack.open()
    await write_some(dm, 0, 3)
    await dm.force_checkpoint()
    before = await truth(dm, dm.datatypes)
    files = [i.path async for i in dm.ost.list("configdata/data/")]
    await dm.enable_maintenance()
    with pytest.raises(BadRequest, match=message):
        await dm.import_data(chunks(body))
    assert await truth(dm, dm.datatypes) == before
    # Nothing of the rejected archive is left behind.
    assert [i.path async for i in dm.ost.list("configdata/data/")] == files


