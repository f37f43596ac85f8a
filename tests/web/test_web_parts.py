"""The UI's pure parts: the task graph layout, log windows, sessions and time formatting."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agola.web import logwindow
from agola.web.graph import NODE_W, layout
from agola.web.projects import crumbs, when_text
from agola.web.sessions import SessionStore
from agola.web.timefmt import elapsed, human_seconds


def _task(tid: str, level: int, status: str = "success", depends: tuple[str, ...] = (), **more: object) -> dict[str, object]:
    return {"id": tid, "name": tid, "status": status, "level": level,
            "depends": {d: {"task_id": d, "conditions": []} for d in depends},
            "start_time": "2024-01-01T00:00:00Z", "end_time": "2024-01-01T00:01:05Z", **more}


def test_graph_levels_are_columns_and_edges_join_dependencies() -> None:
    tasks = {str(t["id"]): t for t in [
        _task("build", 0), _task("lint", 0, "failed"), _task("test", 1, "skipped", ("build", "lint")),
        _task("deploy", 2, "notstarted", ("test",), waiting_approval=True, approved=False)]}
    graph = layout(tasks)
    nodes = {n.id: n for n in graph.nodes}
    assert nodes["build"].x == nodes["lint"].x < nodes["test"].x < nodes["deploy"].x
    assert nodes["build"].y < nodes["lint"].y  # ordered by name within a level
    assert nodes["deploy"].state == "waiting" and "waiting for an approval" in nodes["deploy"].note
    assert "dependency conditions were not met" in nodes["test"].note
    assert nodes["build"].duration == "1m 05s"
    assert sorted((e.source, e.target, e.state) for e in graph.edges) == [
        ("build", "test", "success"), ("lint", "test", "failed"), ("test", "deploy", "skipped")]
    assert graph.width >= 3 * NODE_W and graph.height > 2 * nodes["lint"].h


def test_graph_of_no_tasks_is_empty() -> None:
    graph = layout({})
    assert graph.nodes == () and graph.edges == () and graph.width > 0


async def _chunks(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


LOG = b"".join(b"line %d\n" % i for i in range(1, 101))


async def test_tail_starts_at_a_line_and_counts_the_lines_before() -> None:
    window = await logwindow.tail(_chunks(LOG), 30)
    assert window.data.startswith(b"line ") and window.data.endswith(b"line 100\n")
    first = int(window.data.split(b"\n")[0].split()[1])
    assert window.start_line == first - 1 and window.end == len(LOG)
    assert LOG[window.start:] == window.data


async def test_tail_of_a_short_log_is_all_of_it() -> None:
    window = await logwindow.tail(_chunks(b"a\nb\n"), 1000)
    assert (window.data, window.start, window.start_line, window.end) == (b"a\nb\n", 0, 0, 4)


async def test_range_moves_to_the_next_line_and_stops_reading() -> None:
    read: list[int] = []

    async def counted() -> AsyncIterator[bytes]:
        async for c in _chunks(LOG):
            read.append(len(c))
            yield c

    end = LOG.index(b"line 50\n")
    window = await logwindow.byte_range(counted(), end - 40, end)
    assert window.data.endswith(b"line 49\n") and LOG[window.start:window.end] == window.data
    assert window.start_line == int(window.data.split(b"\n")[0].split()[1]) - 1
    assert sum(read) < len(LOG)  # the rest of a huge log is never read


async def test_after_skips_what_the_page_has() -> None:
    out = b"".join([c async for c in logwindow.after(_chunks(LOG), 100)])
    assert out == LOG[100:]


async def test_sessions_reject_forged_expired_and_signed_out_cookies() -> None:
    now = [1000.0]
    store = SessionStore(b"k" * 32, 60, clock=lambda: now[0])
    session, cookie = await store.create("tok")
    assert store.get(cookie) == session and "tok" not in cookie
    sid, _, sig = cookie.rpartition(".")
    assert store.get(f"{sid}.{sig[:-2]}xx") is None
    assert SessionStore(b"other" * 8, 60).get(cookie) is None
    assert session.csrf_ok(session.csrf) and not session.csrf_ok("") and not session.csrf_ok("x")
    await store.delete(session)
    assert store.get(cookie) is None
    _, cookie2 = await store.create("tok")
    now[0] += 61
    assert store.get(cookie2) is None


async def test_sessions_outlive_the_store_but_not_sign_out(tmp_path: Path) -> None:
    now = [1000.0]
    directory = tmp_path / "web-sessions"
    store = SessionStore(b"k" * 32, 60, directory=directory, clock=lambda: now[0])
    token = "the-api-token-0123456789"
    kept, cookie = await store.create(token)
    ended, ended_cookie = await store.create(token)
    await store.delete(ended)
    files = list(directory.iterdir())
    assert [stat.S_IMODE(f.stat().st_mode) for f in files] == [0o600]
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    # On disk: neither the token nor anything that opens the session without the browser's cookie.
    stored = files[0].read_bytes()
    assert token.encode() not in stored and kept.id.encode() not in stored

    again = SessionStore(b"k" * 32, 60, directory=directory, clock=lambda: now[0])  # a restart
    assert again.get(cookie) == kept and again.get(cookie).token == token  # type: ignore[union-attr]
    assert again.get(ended_cookie) is None
    assert SessionStore(b"other" * 8, 60, directory=directory).get(cookie) is None
    now[0] += 61
    assert SessionStore(b"k" * 32, 60, directory=directory, clock=lambda: now[0]).get(cookie) is None
    assert list(directory.iterdir()) == []  # expired files are removed at load


@pytest.mark.parametrize(("seconds", "text"), [(0.04, "0.0s"), (4.25, "4.2s"), (59, "59s"), (65, "1m 05s"),
                                               (3725, "1h 02m")])
def test_human_durations(seconds: float, text: str) -> None:
    assert human_seconds(seconds) == text


def test_elapsed_is_empty_before_start() -> None:
    assert elapsed(None, None) == "" and elapsed("0001-01-01T00:00:00Z", None) == ""


def test_crumbs_link_the_owner_then_each_group() -> None:
    assert crumbs("org/acme/backend/api") == [
        {"label": "acme", "href": "/orgs/acme"}, {"label": "backend", "href": "/groups/org/acme/backend"},
        {"label": "api", "href": "/groups/org/acme/backend/api"}]
    assert crumbs("user/alice") == [{"label": "alice", "href": "/groups/user/alice"}]


def test_when_reads_as_written_in_a_pipeline() -> None:
    when = {"branch": {"include": [{"type": "simple", "match": "main"}, {"type": "regexp", "match": "^rel-"}]},
            "tag": {"exclude": [{"type": "simple", "match": "v0"}]}}
    assert when_text(when) == "branch main, /^rel-/; tag not v0"
    assert when_text(None) == ""
