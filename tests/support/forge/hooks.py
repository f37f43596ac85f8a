"""Webhooks the emulator sends. Gitea dialect as Gitea's ``services/webhook/deliver.go``: the
payload pretty-printed, ``X-Gitea-Event``/``-Event-Type``/``-Delivery``/``-Signature`` (hex
HMAC-SHA256 of the raw body with the hook's secret) plus the Gogs and GitHub aliases; the GitHub
and GitLab dialects' payloads and headers are in ``github_dialect`` and ``gitlab_dialect``. Which
events a push or a pull request makes is the same for all three (``push_events``). Deliveries
are recorded with agola's answer, and can be sent again (``redeliver``)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import aiohttp
from aiohttp import web

from tests.support.forge import gitops, shapes
from tests.support.forge.model import Delivery, Forge, Hook, PullRequest, Repo, User

# (repository the hook belongs to, X-Gitea-Event, fine-grained event type, payload)
Event = tuple[Repo, str, str, dict[str, Any]]


def headers(hook: Hook, event: str, event_type: str, delivery_id: str, body: bytes) -> dict[str, str]:
    sig256 = hmac.new(hook.secret.encode(), body, hashlib.sha256).hexdigest() if hook.secret else ""
    sig1 = hmac.new(hook.secret.encode(), body, hashlib.sha1).hexdigest() if hook.secret else ""
    out = {"Content-Type": "application/json", "User-Agent": "Go-http-client/1.1"}
    for prefix in ("X-Gitea", "X-Gogs", "X-GitHub"):
        out[f"{prefix}-Delivery"] = delivery_id
        out[f"{prefix}-Event"] = event
        out[f"{prefix}-Event-Type"] = event_type
    out["X-Gitea-Signature"] = sig256
    out["X-Gogs-Signature"] = sig256
    out["X-Hub-Signature"] = f"sha1={sig1}" if sig1 else ""
    out["X-Hub-Signature-256"] = f"sha256={sig256}" if sig256 else ""
    return out


def dialect_headers(forge: Forge, hook: Hook, event: str, event_type: str, delivery_id: str,
                    body: bytes) -> dict[str, str]:
    if forge.dialect == "github":
        from tests.support.forge import github_dialect

        return github_dialect.headers(hook, event, delivery_id, body)
    if forge.dialect == "gitlab":
        from tests.support.forge import gitlab_dialect

        return gitlab_dialect.headers(hook, event, delivery_id)
    return headers(hook, event, event_type, delivery_id, body)


def push_event(forge: Forge, repo: Repo, ref: str, before: str, after: str, commits: list[dict[str, Any]],
               head: dict[str, Any] | None, pusher: User) -> Event:
    """The delivery of one ref update, in the forge's dialect."""
    args = (forge, repo, ref, before, after, commits, head, pusher)
    if forge.dialect == "github":
        from tests.support.forge import github_dialect

        return (repo, "push", "push", github_dialect.push_payload(*args))
    if forge.dialect == "gitlab":
        from tests.support.forge import gitlab_dialect

        event = "Tag Push Hook" if ref.startswith("refs/tags/") else "Push Hook"
        return (repo, event, event, gitlab_dialect.push_payload(*args))
    return (repo, "push", "push", shapes.push_payload(*args))


def pull_request_event(forge: Forge, base: Repo, pr: PullRequest, action: str) -> Event:
    """A pull request ``opened`` or ``synchronized`` (new head commit), in the forge's dialect."""
    if forge.dialect == "github":
        from tests.support.forge import github_dialect

        return (base, "pull_request", "pull_request", github_dialect.pull_request_payload(forge, base, pr, action))
    if forge.dialect == "gitlab":
        from tests.support.forge import gitlab_dialect

        event = "Merge Request Hook"
        return (base, event, event, gitlab_dialect.pull_request_payload(forge, base, pr, action))
    event_type = "pull_request" if action == "opened" else "pull_request_sync"
    return (base, "pull_request", event_type, shapes.pull_request_payload(forge, base, pr, action))


class HookSender:
    def __init__(self, forge: Forge) -> None:
        self.forge = forge
        self.session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._workers: tuple[int, asyncio.Semaphore] | None = None

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self.session is not None:
            await self.session.close()

    async def send_all(self, events: list[Event]) -> None:
        """Queue the deliveries of ``events`` (sent in the background, as Gitea's queue)."""
        for repo, event, event_type, payload in events:
            body = json.dumps(payload, indent=2).encode()
            for hook in list(repo.hooks.values()):
                if hook.active and (event in hook.events or event_type in hook.events):
                    delivery = Delivery(str(uuid.uuid4()), hook.url, event, body)
                    with self.forge.lock:
                        self.forge.deliveries.append(delivery)
                    self._spawn(self.deliver(hook, delivery, event_type))

    async def send_to(self, hook: Hook, event: str, payload: dict[str, Any]) -> None:
        """Queue one delivery to one hook, whatever its events (GitHub's ``ping`` of a new hook)."""
        delivery = Delivery(str(uuid.uuid4()), hook.url, event, json.dumps(payload, indent=2).encode())
        with self.forge.lock:
            self.forge.deliveries.append(delivery)
        self._spawn(self.deliver(hook, delivery, event))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def deliver(self, hook: Hook, delivery: Delivery, event_type: str) -> None:
        workers = self.forge.delivery_workers
        if not workers:
            return await self._deliver(hook, delivery, event_type)
        if self._workers is None or self._workers[0] != workers:
            self._workers = (workers, asyncio.Semaphore(workers))
        async with self._workers[1]:
            return await self._deliver(hook, delivery, event_type)

    async def _deliver(self, hook: Hook, delivery: Delivery, event_type: str) -> None:
        assert self.session is not None
        h = dialect_headers(self.forge, hook, delivery.event, event_type, delivery.id, delivery.body)
        delivery.sent_at = time.monotonic()
        try:
            async with self.session.post(hook.url, data=delivery.body, headers=h) as resp:
                text = await resp.text()
                delivery.response, delivery.status = text[:500], resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            delivery.response, delivery.status = f"{type(exc).__name__}: {exc}", -1
        delivery.answered_at = time.monotonic()


HOOKS_KEY = web.AppKey("hooks", HookSender)


def open_pulls(forge: Forge) -> set[tuple[str, int]]:
    with forge.lock:
        return {(r.path, n) for r in forge.repos.values() for n, pr in r.pulls.items() if pr.state == "open"}


def push_events(forge: Forge, repo: Repo, before: dict[str, str], after: dict[str, str], pusher: User,
                pulls: set[tuple[str, int]]) -> list[Event]:
    """The deliveries a push produced: one ``push`` per changed branch or tag, and a
    ``pull_request`` ``synchronized`` for each PR open before the push (``pulls``) whose head
    branch moved."""
    events: list[Event] = []
    for ref in sorted(set(before) | set(after)):
        old, new = before.get(ref, gitops.ZERO_SHA), after.get(ref, gitops.ZERO_SHA)
        if old == new or not ref.startswith(("refs/heads/", "refs/tags/")):
            continue
        commits = [] if ref.startswith("refs/tags/") else gitops.pushed_commits(repo.git_dir, old, new)
        head = None
        if new != gitops.ZERO_SHA:
            head = gitops.commit(repo.git_dir, gitops.peel(repo.git_dir, new))
        events.append(push_event(forge, repo, ref, old, new, commits, head, pusher))
        if ref.startswith("refs/heads/") and new != gitops.ZERO_SHA:
            events.extend(synchronize_pulls(forge, repo, ref.removeprefix("refs/heads/"), new, pulls))
    return events


def synchronize_pulls(forge: Forge, head_repo: Repo, branch: str, sha: str,
                      pulls: set[tuple[str, int]]) -> list[Event]:
    events: list[Event] = []
    for base in list(forge.repos.values()):
        for pr in list(base.pulls.values()):
            if (base.path, pr.number) in pulls and pr.head_repo == head_repo.path and pr.head_branch == branch:
                pr.head_sha = sha
                update_pull_ref(forge, base, head_repo, pr)
                events.append(pull_request_event(forge, base, pr, "synchronized"))
    return events


def pull_ref(forge: Forge, number: int) -> str:
    """Where the base repository keeps a pull request's head (GitLab: a merge request's)."""
    return f"refs/merge-requests/{number}/head" if forge.dialect == "gitlab" else f"refs/pull/{number}/head"


def update_pull_ref(forge: Forge, base: Repo, head_repo: Repo, pr: PullRequest) -> None:
    gitops.fetch_into(base.git_dir, head_repo.git_dir, f"+refs/heads/{pr.head_branch}:{pull_ref(forge, pr.number)}")
