"""Contract: leases (expiry, keepalive, revoke, loss) and the queued mutex, on every backend."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from agola.storage.coord.base import Coordination
from tests.support.waiting import wait_for

if TYPE_CHECKING:
    from tests.storage.coord.conftest import Backend


def stall_event_loop(seconds: float) -> None:
    """Simulate a process frozen for ``seconds`` (GC pause, SIGSTOP, overloaded host)."""
    time.sleep(seconds)


async def test_keys_of_a_dead_holder_expire_with_delete_events(backend: Backend) -> None:
    coord = await backend.open("x/")
    holder = await backend.open("x/")
    lease = await holder.grant_lease(1)
    await holder.put("owned", b"v", lease=lease.id)
    kv = await coord.get("owned")
    assert kv is not None and kv.lease == lease.id
    async with coord.watch("owned", start_revision=kv.mod_revision + 1) as watcher:
        await holder.close()  # stops the keepalive without revoking, as a crash would
        ev = await asyncio.wait_for(watcher.__aiter__().__anext__(), lease.ttl * 3 + 5)
    assert ev.type == "delete" and ev.kv.key == "owned"
    assert await coord.get("owned") is None


async def test_keepalive_keeps_a_lease_beyond_its_ttl(coord: Coordination) -> None:
    lease = await coord.grant_lease(1)
    await coord.put("alive", b"v", lease=lease.id)
    deadline = time.monotonic() + lease.ttl * 2.5
    while time.monotonic() < deadline:
        assert await coord.get("alive") is not None
        assert not lease.lost
        await asyncio.sleep(0.2)
    await lease.revoke()


async def test_revoke_deletes_keys_at_once(coord: Coordination) -> None:
    lease = await coord.grant_lease(5)
    await coord.put("r/1", b"v", lease=lease.id)
    await coord.put("r/2", b"v", lease=lease.id)
    await coord.put("r/kept", b"v")
    await lease.revoke()
    assert [kv.key for kv in (await coord.range("r/")).kvs] == ["r/kept"]
    assert lease.lost


async def test_a_stalled_process_finds_its_lease_lost_and_its_mutex_as_the_backend_says(
        backend: Backend, coord: Coordination) -> None:
    lease = await coord.grant_lease(1)
    await coord.put("stall", b"v", lease=lease.id)
    mutex = coord.mutex("stall-lock", ttl=1)
    assert await mutex.try_lock()
    assert not mutex.lost
    stall_event_loop(lease.ttl + 1.5)
    await asyncio.wait_for(lease.wait_lost(), 10)
    await wait_for(lambda: _gone(coord, "stall"), timeout=10, message="the server expired the lease")
    other = coord.mutex("stall-lock", ttl=1)
    if backend.kind == "etcd":
        # The session expired: another process may hold the lock now, and can take it.
        await wait_for(lambda: mutex.lost, timeout=10, message="mutex reports its session lost")
        assert await other.try_lock()
        await other.unlock()
    else:
        # Embedded: every other locker is in this same stalled process, the lock is still ours.
        assert mutex.held and not mutex.lost
        assert not await other.try_lock()
    await mutex.unlock()
    assert await other.try_lock()
    await other.unlock()


async def test_try_lock_is_exclusive(coord: Coordination) -> None:
    m1, m2 = coord.mutex("lk"), coord.mutex("lk")
    assert await m1.try_lock()
    assert not await m2.try_lock()
    assert m1.held and not m2.held
    await m1.unlock()
    assert await m2.try_lock()
    await m2.unlock()
    assert not m2.held
    assert (await coord.range("lk/")).kvs == []  # nothing left behind (etcd: the lock keys)


async def test_lock_waiters_are_served_in_arrival_order(coord: Coordination) -> None:
    m1, m2, m3 = coord.mutex("q"), coord.mutex("q"), coord.mutex("q")
    await m1.lock(timeout=5)
    order: list[str] = []

    async def locker(name: str, m: object) -> None:
        await m.lock(timeout=20)  # type: ignore[attr-defined]
        order.append(name)

    t2 = asyncio.create_task(locker("m2", m2))
    await wait_for(lambda: m2.waiting, timeout=10, message="m2 queued")
    t3 = asyncio.create_task(locker("m3", m3))
    await wait_for(lambda: m3.waiting, timeout=10, message="m3 queued")
    await m1.unlock()
    await asyncio.wait_for(t2, 10)
    assert order == ["m2"] and not t3.done()
    await m2.unlock()
    await asyncio.wait_for(t3, 10)
    assert order == ["m2", "m3"]
    await m3.unlock()


async def _gone(coord: Coordination, key: str) -> bool:
    return await coord.get(key) is None


async def test_lock_timeout_leaves_the_queue(coord: Coordination) -> None:
    holder, waiter = coord.mutex("to"), coord.mutex("to")
    await holder.lock(timeout=5)
    started = time.monotonic()
    try:
        await waiter.lock(timeout=0.5)
    except TimeoutError:
        pass
    else:
        raise AssertionError("lock should have timed out")
    assert time.monotonic() - started < 5
    assert not waiter.waiting and not waiter.held
    await holder.unlock()
    assert await waiter.try_lock()
    await waiter.unlock()


async def test_mutex_as_context_manager(coord: Coordination) -> None:
    async with coord.mutex("cm") as m:
        assert not await coord.mutex("cm").try_lock()
        assert not m.lost
    assert await coord.mutex("cm").try_lock()


async def test_a_waiter_whose_session_expired_queues_again(backend: Backend, coord: Coordination) -> None:
    holder, waiter = coord.mutex("requeue", ttl=1), coord.mutex("requeue", ttl=1)
    await holder.lock(timeout=5)
    waiting = asyncio.create_task(waiter.lock(timeout=30))
    await wait_for(lambda: waiter.waiting, timeout=10, message="waiter queued")
    first_key = getattr(waiter, "key", "")
    stall_event_loop(4.0)  # longer than any TTL either backend grants for ttl=1
    if backend.kind == "etcd":
        # Both sessions expired: the waiter queued again with a new session and got the lock.
        await asyncio.wait_for(waiting, 20)
        assert holder.lost
        assert waiter.key != first_key  # type: ignore[attr-defined]
    else:
        # Embedded: no session to lose; the holder keeps the lock, the waiter its place.
        await asyncio.sleep(0)
        assert not holder.lost and waiter.waiting and not waiting.done()
        await holder.unlock()
        await asyncio.wait_for(waiting, 10)
    assert waiter.held
    assert not await coord.mutex("requeue").try_lock()
    await waiter.unlock()
    await holder.unlock()
