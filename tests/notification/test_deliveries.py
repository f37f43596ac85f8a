"""Deliveries on a real etcd, shared by two notification instances: one leader follows the run
events (the other takes over when it goes), a delivery survives a restart and is sent by the next
sender, a receiver that keeps failing ends in deliveryError, redeliveries and expiry."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from agola.errors import BadRequest, NotExist
from agola.forges.base import ForgeRateLimited
from agola.roleclients.runservice import RunserviceClient
from agola.services.notification.events import RunEventFollower, RunEventHandler
from agola.services.notification.sender import DeliverySender, RetryPolicy
from agola.services.notification.store import DeliveryStore
from agola.storage.coord.etcd import EtcdCoordination
from agola.types.notification import CommitStatusMessage, DeliveryKind, DeliveryStatus, OwnerType
from agola.util.aio import cancel_and_wait
from tests.support.services import EtcdServer, free_port
from tests.support.waiting import wait_for

RUN = DeliveryKind.RUN_WEBHOOK


@pytest.fixture
async def coords(etcd_server: EtcdServer) -> AsyncIterator[Callable[[], EtcdCoordination]]:
    """Coordination clients of one installation (a prefix of its own on the shared etcd)."""
    prefix = f"notification-{uuid.uuid4().hex[:8]}/"
    opened: list[EtcdCoordination] = []

    def open_one() -> EtcdCoordination:
        c = EtcdCoordination([etcd_server.endpoint], prefix, timeout=5.0)
        opened.append(c)
        return c

    yield open_one
    for c in opened:
        await c.close()


class Receiver:
    def __init__(self, status: int) -> None:
        self.status = status
        self.bodies: list[bytes] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.read())
        return web.Response(status=self.status)


async def _receiver(status: int) -> tuple[Receiver, TestServer]:
    receiver = Receiver(status)
    app = web.Application()
    app.router.add_post("/", receiver.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return receiver, server


def _sender(store: DeliveryStore, url: str, session: aiohttp.ClientSession, attempts: int = 2) -> DeliverySender:
    return DeliverySender(store, webhook_url=url, webhook_secret="s", statuses=None,
                          policy=RetryPolicy(attempts, 0.01), session=lambda: session)


async def test_one_leader_follows_run_events_and_another_takes_over(coords: Callable[[], EtcdCoordination]) -> None:
    # Nothing answers at this runservice URL: followers keep reconnecting, which is fine here.
    rs = RunserviceClient(f"http://127.0.0.1:{free_port()}")
    followers, tasks = [], []
    for _ in range(2):
        coord = coords()
        handler = RunEventHandler(rs, DeliveryStore(coord), statuses=None, installation_id="agola",
                                  web_exposed_url="http://web", webhooks=True)
        follower = RunEventFollower(coord, rs, handler, max_backoff=0.2)
        followers.append(follower)
        tasks.append(asyncio.create_task(follower.run()))
    try:
        await wait_for(lambda: any(f.leading.is_set() for f in followers), 15)
        [leader] = [f for f in followers if f.leading.is_set()]
        other = followers[1 - followers.index(leader)]
        assert not other.leading.is_set()
        await cancel_and_wait([tasks[followers.index(leader)]])  # the leader stops (its lock released)
        await wait_for(other.leading.is_set, 15, message="the other instance leads")
    finally:
        await cancel_and_wait(tasks)
        await rs.close()


async def test_a_pending_delivery_survives_a_restart_and_a_failing_receiver_ends_in_error(
    coords: Callable[[], EtcdCoordination],
) -> None:
    first = DeliveryStore(coords())
    stored = await first.add(RUN, OwnerType.USER, "u1", run_id="r1", payload='{"n": 1}')
    await first.coord.close()  # the instance stops before sending

    store = DeliveryStore(coords())  # a new instance on the same etcd
    [pending] = await store.pending()
    assert pending.id == stored.id and pending.payload == '{"n": 1}'
    failing, server = await _receiver(503)
    async with aiohttp.ClientSession() as session:
        sender = _sender(store, str(server.make_url("/")), session, attempts=2)
        await sender.run_once()
        d = await store.get(stored.id)
        assert (d.delivery_status, d.attempts, d.status_code) == (DeliveryStatus.NOT_DELIVERED, 1, 503)
        assert d.last_error == "the receiver answered 503"

        async def retried_and_given_up() -> bool:
            await sender.run_once()  # the retry is due 10 ms after the first attempt
            return await _status(store, stored.id, DeliveryStatus.DELIVERY_ERROR)

        await wait_for(retried_and_given_up, 5)
        d = await store.get(stored.id)
        assert d.attempts == 2 and await store.pending() == []
        assert failing.bodies == [b'{"n": 1}', b'{"n": 1}']

        # Redelivered by hand to a receiver that works again: a new delivery, the same message.
        failing.status = 200
        again = await store.redeliver(OwnerType.USER, "u1", RUN, stored.id)
        with pytest.raises(BadRequest, match="still in progress"):
            await store.redeliver(OwnerType.USER, "u1", RUN, stored.id)
        with pytest.raises(NotExist):
            await store.redeliver(OwnerType.USER, "someone-else", RUN, stored.id)
        await sender.run_once()
        assert (await store.get(again.id)).delivery_status is DeliveryStatus.DELIVERED
        page = await store.list(OwnerType.USER, "u1", RUN)
        assert [(d.id, d.delivery_status) for d in page.deliveries] == [
            (stored.id, DeliveryStatus.DELIVERY_ERROR), (again.id, DeliveryStatus.DELIVERED)]
        errors = await store.list(OwnerType.USER, "u1", RUN, statuses=["deliveryError"])
        assert [d.id for d in errors.deliveries] == [stored.id]
    await server.close()


async def _status(store: DeliveryStore, delivery_id: str, status: DeliveryStatus) -> bool:
    return (await store.get(delivery_id)).delivery_status is status


async def test_deliveries_expire_after_their_interval(coords: Callable[[], EtcdCoordination]) -> None:
    clock = [datetime(2026, 1, 1, tzinfo=UTC)]
    store = DeliveryStore(coords(), now=lambda: clock[0])
    old = await store.add(RUN, OwnerType.PROJECT, "p1", run_id="r1", payload="{}")
    clock[0] += timedelta(days=6)
    recent = await store.add(RUN, OwnerType.PROJECT, "p1", run_id="r2", payload="{}")
    clock[0] += timedelta(days=2)
    assert await store.expire(DeliveryKind.COMMIT_STATUS, 7 * 86400) == 0  # another kind
    assert await store.expire(RUN, 7 * 86400) == 1
    page = await store.list(OwnerType.PROJECT, "p1", RUN)
    assert [d.id for d in page.deliveries] == [recent.id]
    assert [d.id for d in await store.pending()] == [recent.id]
    with pytest.raises(NotExist):
        await store.get(old.id)


class RateLimitedForge:
    async def project_name(self, project_id: str) -> str:
        return "p"

    async def set_status(self, msg: CommitStatusMessage) -> None:
        raise ForgeRateLimited("github", "set_commit_status", 120)


async def test_a_rate_limited_forge_is_tried_again_after_its_reset(coords: Callable[[], EtcdCoordination]) -> None:
    clock = datetime(2026, 1, 1, tzinfo=UTC)
    store = DeliveryStore(coords(), now=lambda: clock)
    msg = CommitStatusMessage(project_id="p1", commit_sha="a" * 40, state="pending", context="agola/p/r")
    d = await store.add(DeliveryKind.COMMIT_STATUS, OwnerType.PROJECT, "p1", run_id="r", commit_status=msg)
    async with aiohttp.ClientSession() as session:
        sender = DeliverySender(store, webhook_url="", webhook_secret="", statuses=RateLimitedForge(),
                                policy=RetryPolicy(8, 2.0), session=lambda: session, now=lambda: clock)
        assert await sender.run_once() == 1
    done = await store.get(d.id)
    assert (done.delivery_status, done.status_code) == (DeliveryStatus.NOT_DELIVERED, 429)
    assert done.next_attempt_at == clock + timedelta(seconds=120)  # the reset, not the 2 s backoff
    assert "rate limited" in done.last_error
