"""Archive stores: the local one and the runservice-backed one behave the same for the executor."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agola.errors import BadRequest, NotExist
from agola.services.executor.store import LocalArchiveStore, RunserviceArchiveStore
from tests.runservice.role.conftest import FAST, Instance, embedded_config
from tests.support.services import free_port


async def _read(chunks: AsyncIterator[bytes] | None) -> bytes:
    assert chunks is not None
    return b"".join([c async for c in chunks])


@pytest.fixture(params=["local", "runservice"])
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    if request.param == "local":
        yield LocalArchiveStore(tmp_path / "store")
        return
    instance = Instance(embedded_config(tmp_path / "rs", free_port()), FAST)  # a real runservice
    await instance.start()
    try:
        yield RunserviceArchiveStore(instance.c)
    finally:
        await instance.stop()


async def test_caches_exact_and_by_newest_prefix(any_store: Any, tmp_path: Path) -> None:
    def archive(name: str, data: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    assert not await any_store.cache_exists("proj-deps-a")
    assert await any_store.open_cache("proj-deps-") is None
    await any_store.put_cache("proj-deps-a", archive("a.tar", b"A" * 100_000))
    assert await any_store.cache_exists("proj-deps-a")
    await any_store.put_cache("proj-deps-a", archive("a2.tar", b"not stored"))  # first writer wins
    assert await _read(await any_store.open_cache("proj-deps-a")) == b"A" * 100_000
    if isinstance(any_store, LocalArchiveStore):
        # Distinct modification times without sleeping: the newest is the one written last.
        old = time.time() - 10
        os.utime(any_store._cache_path("proj-deps-a"), (old, old))
    else:
        await _wait_clock_tick()
    await any_store.put_cache("proj-deps-b", archive("b.tar", b"B"))
    assert await _read(await any_store.open_cache("proj-deps-")) == b"B"
    assert await any_store.open_cache("other-") is None


async def _wait_clock_tick() -> None:
    # Object storage keeps modification times at a coarse resolution.
    from tests.support.waiting import wait_for

    start = int(time.time())
    await wait_for(lambda: int(time.time()) > start, timeout=3, interval=0.05)


async def test_missing_workspace_is_not_exist(any_store: Any) -> None:
    with pytest.raises(NotExist):
        await _read(any_store.get_workspace("no-such-task", 0))


async def test_local_workspace_roundtrip(tmp_path: Path) -> None:
    store = LocalArchiveStore(tmp_path / "s")
    src = tmp_path / "w.tar"
    src.write_bytes(b"x" * 300_000)
    await store.put_workspace("task/with/slash", 2, src)
    assert await _read(store.get_workspace("task/with/slash", 2)) == b"x" * 300_000



async def test_a_workspace_this_executor_made_is_read_from_its_task_dir(tmp_path: Path) -> None:
    instance = Instance(embedded_config(tmp_path / "rs", free_port()), FAST)  # a real runservice
    await instance.start()
    try:
        store = RunserviceArchiveStore(instance.c, tasks_dir=tmp_path / "tasks")
        archives = tmp_path / "tasks" / "made-here" / "archives"
        archives.mkdir(parents=True)
        (archives / "1.tar").write_bytes(b"w" * 300_000)
        chunks = store.get_workspace("made-here", 1)
        (archives / "1.tar").unlink()  # the task dir cleaned up meanwhile: already opened
        assert await _read(chunks) == b"w" * 300_000
        # Not made here (or gone): the runservice's copy, which it does not have either.
        with pytest.raises(NotExist):
            await _read(store.get_workspace("made-here", 1))
        with pytest.raises(BadRequest):  # never looked up on disk; the runservice refuses it too
            await _read(store.get_workspace("../made-here", 1))
    finally:
        await instance.stop()
