"""Fault tests: the etcd server stops and comes back while a watch and a lease are active."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from agola.errors import Unavailable
from agola.storage.coord.base import Event, Lease
from agola.storage.coord.etcd import EtcdCoordination
from tests.support.services import EtcdServer
from tests.support.waiting import wait_for


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_watch_and_lease_survive_a_server_restart(etcd_restartable: EtcdServer, how: str) -> None:
    coord = EtcdCoordination([etcd_restartable.endpoint], f"fault-{uuid.uuid4().hex[:8]}/", timeout=2.0)
    try:
        async with asyncio.timeout(90):
            lease = await coord.grant_lease(2)
            await coord.put("leased", b"v", lease=lease.id)
            seen: list[Event] = []

            async with coord.watch("f/") as watcher:

                async def consume() -> None:
                    async for ev in watcher:
                        seen.append(ev)

                consumer = asyncio.create_task(consume())
                for i in range(10):
                    await coord.put(f"f/{i:02d}", b"before")
                await wait_for(lambda: len(seen) == 10, timeout=10, message="events before the outage")

                getattr(etcd_restartable, how)()
                started = time.monotonic()
                with pytest.raises(Unavailable):
                    await coord.put("f/lost", b"x")
                assert time.monotonic() - started < 10  # a bounded failure, not a hang

                await asyncio.to_thread(etcd_restartable.start)
                # Written as soon as the server is back, typically before the watch reconnects:
                # the watcher must replay them from its resume revision.
                for i in range(10, 20):
                    await _put_retrying(coord, f"f/{i:02d}", b"after")
                await wait_for(lambda: len(seen) >= 20, timeout=30, message="events after the restart")
                consumer.cancel()

            assert [e.kv.key for e in seen] == [f"f/{i:02d}" for i in range(20)]
            revs = [e.revision for e in seen]
            assert revs == sorted(set(revs))  # in order, no duplicate
            # The lease either survived (etcd restores leases with a fresh TTL) or is reported lost.
            await asyncio.sleep(0)
            if not lease.lost:
                await wait_for(lambda: _alive_or_lost(coord, lease), timeout=10, message="lease renewed or lost")
            assert lease.lost or await coord.get("leased") is not None
    finally:
        await coord.close()


async def _alive_or_lost(coord: EtcdCoordination, lease: Lease) -> bool:
    if lease.lost:
        return True
    return await coord.get("leased") is not None


async def _put_retrying(coord: EtcdCoordination, key: str, value: bytes) -> None:
    for _ in range(50):
        try:
            await coord.put(key, value)
            return
        except Unavailable:
            await asyncio.sleep(0.1)
    raise AssertionError("etcd did not come back")


async def test_calls_fail_fast_when_no_server_listens() -> None:
    from tests.support.services import free_port

    coord = EtcdCoordination([f"127.0.0.1:{free_port()}"], "nobody/", timeout=1.0)
    try:
        started = time.monotonic()
        with pytest.raises(Unavailable):
            await coord.get("k")
        with pytest.raises(Unavailable):
            await coord.grant_lease(2)
        assert time.monotonic() - started < 8
    finally:
        await coord.close()


async def test_compacted_history_is_reported(etcd_restartable: EtcdServer) -> None:
    from agola.storage.coord.base import Compacted

    coord = EtcdCoordination([etcd_restartable.endpoint], "compact/", timeout=2.0)
    try:
        first = await coord.put("k", b"0")
        for i in range(1, 5):
            await coord.put("k", str(i).encode())
        now = await coord.revision()
        await coord.compact(now)
        with pytest.raises(Compacted):
            async with asyncio.timeout(10):
                async for _ in coord.watch("", start_revision=first):
                    pass
        with pytest.raises(Compacted):
            await coord.range("", revision=first)
        at = await coord.range("", revision=now)
        assert [kv.value for kv in at.kvs] == [b"4"]
    finally:
        await coord.close()


async def test_a_failed_try_lock_leaves_no_session_behind(etcd_restartable: EtcdServer) -> None:
    coord = EtcdCoordination([etcd_restartable.endpoint], "trylock/", timeout=1.0)
    try:
        mutex = coord.mutex("lk", ttl=2)
        assert await mutex.try_lock()
        await mutex.unlock()
        etcd_restartable.kill()
        with pytest.raises(Unavailable):
            await coord.mutex("lk", ttl=2).try_lock()
        assert coord._leases == set()  # no keepalive task left running
    finally:
        await coord.close()
