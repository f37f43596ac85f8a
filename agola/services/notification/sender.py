"""The delivery sender: one pass sends every due delivery (run webhooks to ``webhookURL``, commit
statuses to the forge) and records the outcome.

* A 2xx answer (a run webhook) or a successful forge call (a commit status) is ``delivered``.
* Anything else (another status, a refused connection, a timeout, a forge error) counts as a
  failed attempt: its status code (0 without an answer) and error are recorded and the delivery
  is due again after ``retry_interval * 2^(attempts-1)`` (at most ``MAX_RETRY_DELAY``; later if a
  rate-limited forge announced when to come back); after
  ``max_attempts`` attempts it is a ``deliveryError`` (it can still be redelivered by hand).
* Messages about one run (webhooks) or one commit status context go out in order: while an older
  one is still pending, the newer ones wait, so a late ``pending`` never overwrites ``success``.

Only the leader runs passes (``LoopRunner`` with the ``locks/deliveries`` mutex).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

import aiohttp
import attrs

from agola.errors import AgolaError
from agola.services.notification.forgestatus import CommitStatuses
from agola.services.notification.messages import webhook_headers
from agola.services.notification.store import DeliveryStore, utcnow
from agola.types.notification import Delivery, DeliveryKind, DeliveryStatus
from agola.util.log import get_logger

log = get_logger(__name__)

MAX_RETRY_DELAY = 600.0
ATTEMPT_TIMEOUT = 15.0
CONCURRENCY = 8


@attrs.frozen
class RetryPolicy:
    max_attempts: int = 8
    retry_interval: float = 2.0

    def delay(self, attempts: int) -> float:
        """Seconds before the next attempt after ``attempts`` failed ones."""
        return float(min(MAX_RETRY_DELAY, self.retry_interval * 2 ** max(0, attempts - 1)))


@attrs.frozen
class Outcome:
    ok: bool
    status_code: int = 0
    error: str = ""
    # The forge asked to wait this long (a rate limit's reset), seconds; 0: none.
    retry_after: float = 0.0


def _order_key(d: Delivery) -> str:
    if d.kind is DeliveryKind.COMMIT_STATUS and d.commit_status is not None:
        cs = d.commit_status
        return f"status:{cs.project_id}:{cs.commit_sha}:{cs.context}"
    return f"run:{d.run_id or d.id}"


class DeliverySender:
    name = "notification-deliveries"
    lock = "deliveries"

    def __init__(self, store: DeliveryStore, *, webhook_url: str, webhook_secret: str,
                 statuses: CommitStatuses | None, policy: RetryPolicy,
                 session: Callable[[], aiohttp.ClientSession], now: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.webhook_url = webhook_url
        self._secret = webhook_secret
        self.statuses = statuses
        self.policy = policy
        self._session = session
        self.now = now

    async def run_once(self) -> int:
        """Send what is due; the number of attempts made. Each run's (each status context's)
        deliveries go one after the other; different ones concurrently (``CONCURRENCY``), so a
        receiver or forge that hangs until the timeout holds up only its own messages."""
        now = self.now()
        chains: dict[str, list[Delivery]] = {}
        for d in await self.store.pending():
            chains.setdefault(_order_key(d), []).append(d)
        slots = asyncio.Semaphore(CONCURRENCY)

        async def send_in_order(chain: list[Delivery]) -> int:
            attempts = 0
            for d in chain:
                if d.next_attempt_at is not None and d.next_attempt_at > now:
                    break  # the older one waits for its retry: the newer ones wait behind it
                async with slots:
                    done = await self.attempt(d)
                attempts += 1
                if done.delivery_status is DeliveryStatus.NOT_DELIVERED:
                    break
            return attempts

        results = await asyncio.gather(*(send_in_order(c) for c in chains.values()), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r  # the loop logs it and backs off; every other chain has finished
        return sum(r for r in results if isinstance(r, int))

    async def attempt(self, d: Delivery) -> Delivery:
        outcome = await self._send(d)
        now = self.now()
        attempts = d.attempts + 1
        if outcome.ok:
            status, next_at = DeliveryStatus.DELIVERED, None
        elif attempts >= self.policy.max_attempts:
            status, next_at = DeliveryStatus.DELIVERY_ERROR, None
        else:
            delay = max(self.policy.delay(attempts), outcome.retry_after)
            status, next_at = DeliveryStatus.NOT_DELIVERED, now + timedelta(seconds=delay)
        done = attrs.evolve(d, delivery_status=status, attempts=attempts, status_code=outcome.status_code,
                            delivered_at=now if outcome.status_code or outcome.ok else d.delivered_at,
                            next_attempt_at=next_at, last_error=outcome.error)
        await self.store.save_attempt(done)
        log.info("delivery attempt", delivery=d.id, kind=str(d.kind), run=d.run_id, status=str(status),
                 status_code=outcome.status_code, attempts=attempts, error=outcome.error or None)
        return done

    async def _send(self, d: Delivery) -> Outcome:
        try:
            if d.kind is DeliveryKind.RUN_WEBHOOK:
                return await self._post_webhook(d)
            return await self._set_status(d)
        except asyncio.CancelledError:
            raise
        except AgolaError as exc:
            # Before OSError: some (Unavailable, ForgeUnreachable) are ConnectionErrors too.
            return Outcome(False, int(getattr(exc, "forge_status", 0) or 0), exc.message,
                           float(getattr(exc, "retry_after", 0.0) or 0.0))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return Outcome(False, 0, str(exc) or type(exc).__name__)

    async def _post_webhook(self, d: Delivery) -> Outcome:
        if not self.webhook_url:
            return Outcome(False, 0, "no notification.webhookURL configured")
        body = d.payload.encode()
        async with self._session().post(self.webhook_url, data=body, headers=webhook_headers(d.id, body, self._secret),
                                        timeout=aiohttp.ClientTimeout(total=ATTEMPT_TIMEOUT),
                                        allow_redirects=False) as resp:
            await resp.read()
            ok = 200 <= resp.status < 300
            return Outcome(ok, resp.status, "" if ok else f"the receiver answered {resp.status}")

    async def _set_status(self, d: Delivery) -> Outcome:
        if self.statuses is None or d.commit_status is None:
            return Outcome(False, 0, "commit statuses are not available")
        async with asyncio.timeout(ATTEMPT_TIMEOUT):  # not wait_for: it can swallow a stop (3.11)
            await self.statuses.set_status(d.commit_status)
        return Outcome(True, 0)
