"""The notification role (spec §6.10, §10 "v0.9"): run webhooks and commit statuses.

Three loops over one delivery store (``store.py``, in the role's coordination: etcd, or the
embedded store under ``notification.dataDir``):

* the **event follower** (leader only, mutex ``locks/runevents``): run events from the runservice
  become stored deliveries (``events.py``);
* the **sender** (leader only, mutex ``locks/deliveries``; woken when deliveries are stored, and
  every second for retries): sends what is due, retries with backoff (``sender.py``);
* the **expirer** (mutex ``locks/expire``, hourly): drops deliveries older than
  ``runWebhookExpireInterval`` / ``commitStatusExpireInterval``.

Several instances may run on one etcd: one leads, the others wait for the locks. The internal API
(``api.py``) lists and redelivers deliveries for the gateway.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from agola.config import Config
from agola.roleclients.configstore import ConfigstoreClient
from agola.roleclients.runservice import RunserviceClient
from agola.services.notification.api import build_app
from agola.services.notification.events import RunEventFollower, RunEventHandler
from agola.services.notification.forgestatus import CommitStatuses, ForgeCommitStatuses
from agola.services.notification.sender import DeliverySender, RetryPolicy
from agola.services.notification.store import DeliveryStore, RunStates
from agola.services.role import Role
from agola.storage.coord.base import Coordination
from agola.storage.coord.factory import open_coordination
from agola.types.notification import DeliveryKind
from agola.util.aio import cancel_and_wait
from agola.util.log import get_logger
from agola.util.loops import LoopRunner
from agola.util.privatefiles import private_dir

log = get_logger(__name__)

COORD_PREFIX = "notification/"
SEND_INTERVAL = 1.0
EXPIRE_INTERVAL = 3600.0
LOCK_TTL = 10.0


class Expirer:
    name = "notification-expire"

    def __init__(self, store: DeliveryStore, run_webhooks: float, commit_statuses: float) -> None:
        self.store = store
        self.states = RunStates(store.coord)
        self.after = {DeliveryKind.RUN_WEBHOOK: run_webhooks, DeliveryKind.COMMIT_STATUS: commit_statuses}

    async def run_once(self) -> int:
        deleted = 0
        for kind, older_than in self.after.items():
            deleted += await self.store.expire(kind, older_than)
        # A run silent that long is over, or never to be heard of again.
        await self.states.expire(max(self.after.values()))
        if deleted:
            log.info("expired deliveries deleted", deleted=deleted)
        return deleted


class NotificationRole(Role):
    name = "notification"

    def __init__(self, config: Config, *, statuses: CommitStatuses | None = None,
                 coord_prefix: str = COORD_PREFIX) -> None:
        """``statuses``: where commit statuses go instead of the projects' forges (tests)."""
        super().__init__(config)
        self._statuses_override = statuses
        self.coord_prefix = coord_prefix
        self.coord: Coordination | None = None
        self.store: DeliveryStore | None = None
        self.runservice: RunserviceClient | None = None
        self.configstore: ConfigstoreClient | None = None
        self.handler: RunEventHandler | None = None
        self.follower: RunEventFollower | None = None
        self.sender: DeliverySender | None = None
        self._session: aiohttp.ClientSession | None = None
        self._runners: list[LoopRunner] = []
        self._follow_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        nt = self.config.notification
        if nt.data_dir:
            private_dir(nt.data_dir)
        self.coord = await open_coordination(nt.etcd, nt.data_dir, self.coord_prefix)
        self.store = DeliveryStore(self.coord)
        self.runservice = RunserviceClient(nt.runservice_url, token=self.config.api_token_for("runservice", caller=self.name))
        statuses = self._statuses_override
        if statuses is None:
            self.configstore = ConfigstoreClient(
                nt.configstore_url, token=self.config.api_token_for("configstore", caller=self.name))
            statuses = ForgeCommitStatuses(self.configstore)
        self.sender = DeliverySender(
            self.store, webhook_url=nt.webhook_url, webhook_secret=nt.webhook_secret, statuses=statuses,
            policy=RetryPolicy(nt.delivery_max_attempts, nt.delivery_retry_interval), session=self._http)
        coord = self.coord
        send = LoopRunner(self.sender, SEND_INTERVAL,
                          lock=lambda: coord.mutex(f"locks/{DeliverySender.lock}", ttl=LOCK_TTL))
        expire = LoopRunner(Expirer(self.store, nt.run_webhook_expire_interval, nt.commit_status_expire_interval),
                            EXPIRE_INTERVAL, lock=lambda: coord.mutex("locks/expire", ttl=LOCK_TTL))
        self._runners = [send, expire]
        self.handler = RunEventHandler(
            self.runservice, self.store, statuses=statuses, installation_id=self.config.id,
            web_exposed_url=nt.web_exposed_url, webhooks=bool(nt.webhook_url), on_new=send.wake)
        self.follower = RunEventFollower(self.coord, self.runservice, self.handler)
        for runner in self._runners:
            runner.start()
        self._follow_task = asyncio.create_task(self.follower.run(), name="notification-follower")
        log.info("notification started", run_webhooks=bool(nt.webhook_url))

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def wake(self) -> None:
        """Ask the sender for a pass now (a redelivery was stored)."""
        if self._runners:
            self._runners[0].wake()

    async def stop(self) -> None:
        task, self._follow_task = self._follow_task, None
        if task is not None:
            await cancel_and_wait([task])
        runners, self._runners = self._runners, []
        for runner in runners:
            await runner.stop()
        for client in (self.runservice, self.configstore):
            if client is not None:
                await client.close()
        self.runservice = self.configstore = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.coord is not None:
            await self.coord.close()
            self.coord = None
        self.store = None

    def web_app(self) -> web.Application:
        return build_app(lambda: self.store, self.wake, api_token=self.config.api_token_for(self.name))
