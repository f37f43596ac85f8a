"""The notification role end to end: every role in one process (docker executor), a webhook
receiver on 127.0.0.1, and a fake forge recording commit statuses.

One module-scoped installation serves the whole scenario, in order: a real direct run is POSTed
to the receiver event by event (signed, Agola's payload), a 500 is retried, the deliveries are
listed and one is redelivered through the gateway (API and CLI); a project run gets its commit
statuses pending then success, also when the forge is down at first.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import subprocess
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import attrs
import pytest
from aiohttp import web
from click.testing import CliRunner, Result

from agola.cli.main import agola
from agola.forges import ForgeUnreachable
from agola.roleclients.runservice import RunserviceClient
from agola.services import registry
from agola.services.notification.role import NotificationRole
from agola.services.role import Role, RoleHost
from agola.services.runservice.logic.groups import approval_change_group
from agola.types.notification import CommitStatusMessage
from agola.types.runservice import RunCreateRequest, RunPhase
from tests.client.stack import ADMIN, ALL, RoleStack
from tests.support.services import free_port
from tests.support.waiting import wait_for, wait_for_sync

T = TypeVar("T")
SECRET = "run-webhook-secret-0123456789"
PROJECT_ID = "0f1e2d3c-aaaa-bbbb-cccc-000000000001"


class Receiver:
    """A run webhook receiver: records every POST; answers 500 to the first ``fail_next`` ones."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], bytes, int]] = []
        self.fail_next = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        status = 200
        if self.fail_next:
            self.fail_next -= 1
            status = 500
        self.calls.append((dict(request.headers), body, status))
        return web.Response(status=status)


class FakeForge:
    """The commit statuses a forge would get; ``down`` calls fail as an unreachable forge."""

    def __init__(self) -> None:
        self.calls: list[CommitStatusMessage] = []
        self.down = 0

    async def project_name(self, project_id: str) -> str:
        assert project_id == PROJECT_ID
        return "p1"

    async def set_status(self, msg: CommitStatusMessage) -> None:
        if self.down:
            self.down -= 1
            raise ForgeUnreachable("gitea", "set_commit_status", "connection refused")
        self.calls.append(msg)


class Stack(RoleStack):
    def __init__(self, tmp: Path, receiver_port: int) -> None:
        notification = (f"  webhookURL: http://127.0.0.1:{receiver_port}/hook\n"
                        f"  webhookSecret: {SECRET}\n  deliveryRetryInterval: 200ms\n")
        super().__init__(tmp, (*ALL, "notification"), {
            "executor": "  docker: {network: none}\n", "notification": notification})
        self.receiver = Receiver()
        self.forge = FakeForge()
        self.receiver_port = receiver_port
        self._receiver_runner: web.AppRunner | None = None

    def start(self) -> None:
        self.thread.start()

        async def start() -> None:
            app = web.Application()
            app.router.add_post("/hook", self.receiver.handle)
            self._receiver_runner = web.AppRunner(app)
            await self._receiver_runner.setup()
            await web.TCPSite(self._receiver_runner, "127.0.0.1", self.receiver_port).start()
            roles: list[Role] = []
            for name in registry.ordered(set(self.components)):
                cls = registry.load_role(name)
                roles.append(NotificationRole(self.config, statuses=self.forge) if cls is NotificationRole
                             else cls(self.config))
            self.host = RoleHost(roles, shutdown_timeout=5)
            await self.host.start()

        self.run(start())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def stop(self) -> None:
        if self._receiver_runner is not None:
            self.run(self._receiver_runner.cleanup())
        super().stop()

    def notification(self) -> NotificationRole:
        assert self.host is not None
        return next(r for r in self.host.roles if isinstance(r, NotificationRole))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, busybox_image: str) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("notification"), free_port())
    s.start()
    try:
        follower = s.notification().follower
        assert follower is not None
        wait_for_sync(follower.connected.is_set, 30, message="notification follows run events")
        yield s
    finally:
        s.stop()


def cli(stack: Stack, token: str, *args: str) -> Result:
    return CliRunner().invoke(agola, ["--gateway-url", stack.url, "--token", token, *args])


@pytest.fixture(scope="module")
def user_token(stack: Stack) -> str:
    assert cli(stack, ADMIN, "user", "create", "user01").exit_code == 0
    return cli(stack, ADMIN, "user", "token", "create", "user01", "t").stdout.strip()


@pytest.fixture(scope="module")
def direct_run(stack: Stack, user_token: str, tmp_path_factory: pytest.TempPathFactory, busybox_image: str) -> str:
    """A real direct run of one task, finished with success; its run id. The receiver answers
    500 to the first delivery."""
    repo = tmp_path_factory.mktemp("repo")
    (repo / ".agola").mkdir()
    (repo / ".agola" / "config.yml").write_text(
        "version: v0\nruns:\n  - name: hello\n    tasks:\n      - name: greet\n"
        f"        runtime: {{containers: [{{image: {busybox_image}}}]}}\n"
        "        steps:\n          - run: echo hello\n")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    stack.receiver.fail_next = 1
    started = cli(stack, user_token, "directrun", "start", "-C", str(repo), "--follow")
    assert started.exit_code == 0, started.output
    [run] = json.loads(cli(stack, user_token, "run", "list", "--json").stdout)
    return str(run["id"])


def _events(stack: Stack, run_id: str) -> list[dict[str, Any]]:
    """The payloads the receiver accepted for ``run_id``, in arrival order."""
    return [body for _, body, status in _calls(stack) if status == 200 and body["run"]["id"] == run_id]


def _calls(stack: Stack) -> list[tuple[dict[str, str], dict[str, Any], int]]:
    return [(h, json.loads(b), s) for h, b, s in list(stack.receiver.calls)]


def test_run_webhooks_are_signed_and_follow_the_run(stack: Stack, direct_run: str) -> None:
    wait_for_sync(lambda: any(e["run"]["phase"] == "finished" for e in _events(stack, direct_run)), 60,
                  message="the finished event reached the receiver")
    events = _events(stack, direct_run)
    assert [e["run"]["phase"] for e in events] == ["queued", "running", "running", "finished"]
    assert events[-1]["run"]["result"] == "success"
    for headers, raw, _ in stack.receiver.calls:
        assert headers["X-Agola-Event"] == "run"
        expected = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Agola-SHA256Signature"], expected)
    final = events[-1]
    assert final["version"] == 1 and final["project_info"] == {"project_id": ""}
    assert final["run"]["name"] == "hello" and final["run"]["counter"] == 1
    assert final["run"]["ref"] == "refs/heads/master" and final["run"]["ref_type"] == "branch"
    [task] = final["run"]["tasks"].values()
    assert (task["name"], task["level"], task["status"], task["skip"]) == ("greet", 0, "success", False)
    assert [s["exit_status"] for s in task["steps"]] == [0]
    assert final["user_info"]["user_id"]


def test_a_refused_delivery_is_retried(stack: Stack, direct_run: str) -> None:
    wait_for_sync(lambda: len(_events(stack, direct_run)) == 4, 60)
    first_headers, first_body, first_status = _calls(stack)[0]
    assert first_status == 500
    retried = [h for h, b, s in _calls(stack) if h["X-Agola-Delivery"] == first_headers["X-Agola-Delivery"]]
    assert len(retried) == 2 and first_body["run"]["phase"] == "queued"


def test_deliveries_listed_and_redelivered_through_the_gateway(stack: Stack, direct_run: str, user_token: str) -> None:
    def all_delivered() -> list[dict[str, Any]] | None:
        listed = cli(stack, user_token, "delivery", "list", "--user", "user01", "--json")
        assert listed.exit_code == 0, listed.output
        rows: list[dict[str, Any]] = json.loads(listed.stdout)
        return rows if len(rows) == 4 and all(r["delivery_status"] == "delivered" for r in rows) else None

    rows = wait_for_sync(all_delivered, 30)
    assert [r["attempts"] for r in rows] == [2, 1, 1, 1]
    assert {r["status_code"] for r in rows} == {200} and {r["run_id"] for r in rows} == {direct_run}

    # The API directly: filters, and another user's deliveries are not for everyone.
    async def api() -> tuple[int, list[Any], int]:
        async with aiohttp.ClientSession(headers={"Authorization": f"token {user_token}"}) as http:
            base = f"{stack.url}/api/v1alpha/users/user01/runwebhookdeliveries"
            async with http.get(base, params={"deliverystatus": "deliveryError"}) as resp:
                errors = (resp.status, await resp.json())
            async with http.get(f"{stack.url}/api/v1alpha/users/admin/runwebhookdeliveries") as resp:
                other = resp.status
        return errors[0], errors[1], other

    status, errors, other = stack.run(api())
    assert (status, errors) == (200, [])
    assert other in (403, 404)

    before = len(stack.receiver.calls)
    redone = cli(stack, user_token, "delivery", "redeliver", "--user", "user01", rows[-1]["id"], "--json")
    assert redone.exit_code == 0, redone.output
    new = json.loads(redone.stdout)
    assert new["redelivery_of"] == rows[-1]["id"] and new["id"] != rows[-1]["id"]
    wait_for_sync(lambda: len(stack.receiver.calls) > before, 30, message="the redelivery reached the receiver")
    headers, body, _ = _calls(stack)[before]
    assert headers["X-Agola-Delivery"] == new["id"]
    assert body == _events(stack, direct_run)[3]  # the same message, sent again
    rows = wait_for_sync(lambda: (r := json.loads(cli(stack, user_token, "delivery", "list", "--user", "user01",
                                                            "--json").stdout)) and len(r) == 5
                         and r[-1]["delivery_status"] == "delivered" and r, 30)
    table = cli(stack, user_token, "delivery", "list", "--user", "user01")
    assert new["id"] in table.stdout and "delivered" in table.stdout


def test_project_run_commit_statuses_pending_then_success(stack: Stack, direct_run: str) -> None:
    """A run of a project on a forge (created in the runservice as the webhook path will):
    pending, then success; the forge is down for the first call, which is retried."""
    rs_token = stack.config.api_token_for("runservice", caller="gateway")

    async def create_project_run() -> str:
        async with RunserviceClient(stack.config.gateway.runservice_url, token=rs_token) as rs:
            done = await rs.get_run(direct_run)
            assert done.run_config is not None
            # The same one task under a new id (task ids are unique across runs).
            [task] = done.run_config.tasks.values()
            task = attrs.evolve(task, id=str(uuid.uuid4()))
            req = RunCreateRequest(
                run_config_tasks={task.id: task}, name="build", group=f"/project/{PROJECT_ID}/branch/master",
                static_environment=done.run_config.static_environment,
                annotations={"run_type": "project", "projectid": PROJECT_ID, "commit_sha": "c0ffee" * 6 + "abcd",
                             "ref_type": "branch", "ref": "refs/heads/master", "branch": "master"})
            return (await rs.create_run(req)).run.id

    stack.forge.down = 1
    run_id = stack.run(create_project_run())
    wait_for_sync(lambda: [c.state for c in stack.forge.calls] == ["pending", "success"], 60,
                  message="pending then success on the forge")
    pending, success = stack.forge.calls
    assert success.context == pending.context == "agola/p1/build"
    assert success.commit_sha == "c0ffee" * 6 + "abcd"
    assert success.description == "The run finished successfully" and pending.description == "The run is pending"
    assert success.target_url == f"{stack.config.notification.web_exposed_url}/runs/{run_id}"


def test_a_run_finishing_while_notification_is_down_still_gets_its_final_status(stack: Stack, direct_run: str) -> None:
    """The role stops while a project run waits for an approval; the run finishes meanwhile (no
    one follows its events); once the role is back it catches up: success on the forge."""
    rs_token = stack.config.api_token_for("runservice", caller="gateway")
    role = stack.notification()
    stack.forge.calls.clear()

    async def create_gated_run() -> tuple[str, str]:
        async with RunserviceClient(stack.config.gateway.runservice_url, token=rs_token) as rs:
            done = await rs.get_run(direct_run)
            assert done.run_config is not None
            [task] = done.run_config.tasks.values()
            task = attrs.evolve(task, id=str(uuid.uuid4()), needs_approval=True)
            req = RunCreateRequest(
                run_config_tasks={task.id: task}, name="deploy", group=f"/project/{PROJECT_ID}/branch/release",
                static_environment=done.run_config.static_environment,
                annotations={"run_type": "project", "projectid": PROJECT_ID, "commit_sha": "d" * 40,
                             "ref_type": "branch", "ref": "refs/heads/release", "branch": "release"})
            return (await rs.create_run(req)).run.id, task.id

    async def approve_and_wait(run_id: str, task_id: str) -> str:
        async with RunserviceClient(stack.config.gateway.runservice_url, token=rs_token) as rs:
            async def waiting() -> bool:
                return (await rs.get_run(run_id)).run.tasks[task_id].waiting_approval

            await wait_for(waiting, 60)
            group = approval_change_group(run_id)
            fresh = await rs.get_run(run_id, [group])
            await rs.approve_task(run_id, task_id, fresh.change_groups_update_token)

            async def finished() -> bool:
                return (await rs.get_run(run_id)).run.phase == RunPhase.FINISHED

            await wait_for(finished, 60)
            return str((await rs.get_run(run_id)).run.result)

    run_id, task_id = stack.run(create_gated_run())
    wait_for_sync(lambda: [c.state for c in stack.forge.calls] == ["pending"], 60, message="pending set")
    stack.run(role.stop())
    try:
        assert stack.run(approve_and_wait(run_id, task_id)) == "success"
    finally:
        stack.run(role.start())
    wait_for_sync(lambda: [c.state for c in stack.forge.calls] == ["pending", "success"], 60,
                  message="the final status after the restart")
    assert stack.forge.calls[-1].target_url.endswith(f"/runs/{run_id}")
