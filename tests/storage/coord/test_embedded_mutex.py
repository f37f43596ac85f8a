"""The embedded store's in-process mutex: no store write, shared by the handles of one process,
lost with its handle (the contract suite in test_coord_leases.py runs on it too)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from agola.storage.coord.base import Closed
from agola.storage.coord.embedded import EmbeddedCoordination
from tests.support.waiting import wait_for


async def test_locking_writes_nothing_to_the_store(tmp_path: Path) -> None:
    coord = await EmbeddedCoordination.open(tmp_path / "coord", "rs/")
    try:
        await coord.put("work", b"v")
        before = await coord.revision()
        holder, waiter = coord.mutex("locks/job"), coord.mutex("locks/job")
        for _ in range(3):  # a loop's passes
            assert await holder.try_lock()
            assert not await waiter.try_lock()
            await holder.unlock()
        await holder.lock(timeout=5)
        queued = asyncio.create_task(waiter.lock(timeout=10))
        await wait_for(lambda: waiter.waiting, timeout=10, message="waiter queued")
        await holder.unlock()
        await asyncio.wait_for(queued, 10)
        await waiter.unlock()
        assert await coord.revision() == before
        assert (await coord.range("")).kvs == [await coord.get("work")]
    finally:
        await coord.close()


async def test_handles_of_one_process_share_locks_by_full_key(tmp_path: Path) -> None:
    a = await EmbeddedCoordination.open(tmp_path / "coord", "runservice/")
    b = await EmbeddedCoordination.open(tmp_path / "coord", "runservice/")
    c = await EmbeddedCoordination.open(tmp_path / "coord", "configstore/")
    try:
        held = a.mutex("locks/sync")
        assert await held.try_lock()
        assert not await b.mutex("locks/sync/").try_lock()  # same key, trailing slash or not
        other_role = c.mutex("locks/sync")
        assert await other_role.try_lock()  # another prefix, another lock
        await other_role.unlock()
        await held.unlock()
        assert await b.mutex("locks/sync").try_lock()
    finally:
        for h in (a, b, c):
            await h.close()


async def test_closing_a_handle_loses_its_locks_and_fails_its_waiters(tmp_path: Path) -> None:
    closing = await EmbeddedCoordination.open(tmp_path / "coord", "rs/")
    staying = await EmbeddedCoordination.open(tmp_path / "coord", "rs/")
    try:
        held = closing.mutex("a")
        assert await held.try_lock()
        lost = asyncio.create_task(held.wait_lost())
        next_in_line = staying.mutex("a")
        taking = asyncio.create_task(next_in_line.lock(timeout=10))
        staying_holder = staying.mutex("b")
        assert await staying_holder.try_lock()
        closing_waiter = closing.mutex("b")
        failing = asyncio.create_task(closing_waiter.lock(timeout=10))
        await wait_for(lambda: next_in_line.waiting and closing_waiter.waiting, timeout=10,
                       message="both waiters queued")

        await closing.close()
        await asyncio.wait_for(lost, 10)
        assert held.lost
        await asyncio.wait_for(taking, 10)  # the lock went to the next in line, on the other handle
        assert next_in_line.held
        with pytest.raises(Closed):
            await failing
        with pytest.raises(Closed):
            await closing.mutex("c").try_lock()
        await held.unlock()  # harmless: the lock is someone else's now
        assert not await staying.mutex("a").try_lock()
        await next_in_line.unlock()
        await staying_holder.unlock()
    finally:
        await closing.close()
        await staying.close()


async def test_a_waiter_cancelled_as_the_lock_reaches_it_passes_it_on(tmp_path: Path) -> None:
    coord = await EmbeddedCoordination.open(tmp_path / "coord", "rs/")
    try:
        holder, cancelled, last = coord.mutex("k"), coord.mutex("k"), coord.mutex("k")
        assert await holder.try_lock()
        t1 = asyncio.create_task(cancelled.lock(timeout=10))
        await wait_for(lambda: cancelled.waiting, timeout=10, message="first waiter queued")
        t2 = asyncio.create_task(last.lock(timeout=10))
        await wait_for(lambda: last.waiting, timeout=10, message="second waiter queued")
        await holder.unlock()  # hands the lock to the first waiter, which has not run yet
        t1.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t1
        assert not cancelled.held
        await asyncio.wait_for(t2, 10)
        assert last.held
        await last.unlock()
        assert await coord.mutex("k").try_lock()
    finally:
        await coord.close()


async def test_a_lock_is_handed_to_a_waiter_on_another_event_loop(tmp_path: Path) -> None:
    coord = await EmbeddedCoordination.open(tmp_path / "coord", "rs/")
    other_loop_coord: list[EmbeddedCoordination] = []
    got = threading.Event()
    queued = threading.Event()

    async def other_loop() -> None:
        c = await EmbeddedCoordination.open(tmp_path / "coord", "rs/")
        other_loop_coord.append(c)
        m = c.mutex("shared")
        waiting = asyncio.create_task(m.lock(timeout=20))
        while not m.waiting:
            await asyncio.sleep(0.01)
        queued.set()
        await waiting
        got.set()
        await m.unlock()
        await c.close()

    try:
        holder = coord.mutex("shared")
        assert await holder.try_lock()
        thread = threading.Thread(target=asyncio.run, args=(other_loop(),))
        thread.start()
        assert await asyncio.to_thread(queued.wait, 20)
        assert not got.is_set()
        await holder.unlock()
        assert await asyncio.to_thread(got.wait, 20)
        await asyncio.to_thread(thread.join, 20)
        assert await coord.mutex("shared").try_lock()
    finally:
        await coord.close()
