"""``RunFollower`` (the engine of ``--follow``) against the fake gateway: live lines, approval."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agola.cli import _git
from agola.cli._follow import LineBuffer, RunFollower, newest_runs_of
from agola.client import GatewayClient, UserCreateRunRequest
from tests.client.fakegateway import FakeGateway
from tests.support.waiting import wait_for


def test_line_buffer_joins_chunks_and_drops_tty_carriage_returns() -> None:
    out: list[str] = []
    buf = LineBuffer(out.append, "[t] ")
    for chunk in (b"he", b"llo\r\nwor", b"ld\r\n", b"partial"):
        buf.feed(chunk)
    assert out == ["[t] hello", "[t] world"]
    buf.close()
    assert out[-1] == "[t] partial"
    buf.feed(b"x" * (70 * 1024))  # no newline at all: still shown
    assert len(out) == 4


def test_line_buffer_hands_over_a_chunk_of_lines_at_once_prefixing_each() -> None:
    out: list[str] = []
    buf = LineBuffer(out.append, "[t] ")
    buf.feed(b"one\r\ntwo\r\r\n\x1b[1mthree\xff\r\nfou")
    buf.feed(b"r\n")
    assert out == ["[t] one\n[t] two\n[t] \x1b[1mthree\ufffd", "[t] four"]


async def test_follow_announces_approval_and_streams_after_it(fake_gateway: FakeGateway, tmp_path: Path) -> None:
    u = fake_gateway.add_user("user01", token="tok")
    fake_gateway.state.needs_approval = True
    repo = tmp_path / "r"
    repo.mkdir()
    _git.git(str(repo), "init", "-q")
    snap = _git.save_snapshot(str(repo))
    _git.push_snapshot(snap.root, snap.commit_sha, _git.repo_push_url(fake_gateway.url, u["id"], "rid"),
                       "refs/heads/master", "tok")
    lines: list[str] = []
    async with GatewayClient(fake_gateway.url, "tok") as gw:
        await gw.user_create_run(UserCreateRunRequest("rid", f"{u['id']}/rid", snap.commit_sha, branch="master"))
        [run_id] = await newest_runs_of(gw, f"/user/{u['id']}", set(), snap.commit_sha, timeout=5)
        follower = RunFollower(gw, lines.append, poll_interval=0.05)
        following = asyncio.create_task(follower.follow(run_id))

        await wait_for(lambda: any("waiting for approval" in line for line in lines), 10)
        assert not any("line 0" in line for line in lines)
        await gw.approve_task(run_id, next(iter((await gw.get_run(run_id)).tasks)))
        final = await asyncio.wait_for(following, 20)

    assert final.result == "success"
    text = "\n".join(lines)
    assert "waiting for approval: agola run approve #1 task01" in text  # a direct run, named by its counter
    assert text.index("waiting for approval") < text.index("[task01] line 0") < text.index("result success")
    async with GatewayClient(fake_gateway.url, "tok") as gw:
        # A run already known before the call is not taken for the new one.
        assert await newest_runs_of(gw, f"/user/{u['id']}", {run_id}, snap.commit_sha, timeout=0) == []
