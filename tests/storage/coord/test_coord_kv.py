"""Contract: keys, revisions, ranges, txns and watches behave like etcd on every backend."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from agola.storage.coord.base import Compare, Coordination, Delete, Event, Get, Put, Watcher

if TYPE_CHECKING:
    from tests.storage.coord.conftest import Backend


async def take(watcher: Watcher, n: int, timeout: float = 10.0) -> list[Event]:
    out: list[Event] = []

    async def run() -> None:
        async for ev in watcher:
            out.append(ev)
            if len(out) == n:
                return

    await asyncio.wait_for(run(), timeout)
    return out


async def test_put_get_track_revisions_and_versions(coord: Coordination) -> None:
    assert await coord.get("a") is None
    r1 = await coord.put("a", b"one")
    r2 = await coord.put("a", b"two")
    r3 = await coord.put("b", b"")
    assert r1 < r2 < r3 and r3 == await coord.revision()
    a = await coord.get("a")
    assert a is not None
    assert (a.key, a.value, a.create_revision, a.mod_revision, a.version) == ("a", b"two", r1, r2, 2)
    b = await coord.get("b")
    assert b is not None and b.value == b"" and b.version == 1


async def test_delete_single_and_prefix(coord: Coordination) -> None:
    for k in ("d/1", "d/2", "d/3", "dx", "e"):
        await coord.put(k, b"v")
    rev = await coord.revision()
    assert await coord.delete("missing") == 0
    assert await coord.revision() == rev  # deleting nothing writes nothing
    assert await coord.delete("e") == 1
    assert await coord.delete("d/", prefix=True) == 3
    assert [kv.key for kv in (await coord.range("")).kvs] == ["dx"]
    # A key recreated after deletion starts a new life.
    await coord.put("e", b"again")
    e = await coord.get("e")
    assert e is not None and e.version == 1 and e.create_revision == e.mod_revision


async def test_range_is_ordered_limited_and_reports_revision(coord: Coordination) -> None:
    for k in ("r/c", "r/a", "r/b", "s/x"):
        await coord.put(k, k.encode())
    res = await coord.range("r/")
    assert [kv.key for kv in res.kvs] == ["r/a", "r/b", "r/c"]
    assert res.revision == await coord.revision()
    limited = await coord.range("r/", limit=2)
    assert [kv.key for kv in limited.kvs] == ["r/a", "r/b"]


async def test_range_at_a_past_revision(coord: Coordination) -> None:
    r1 = await coord.put("h/a", b"1")
    await coord.put("h/b", b"1")
    r3 = await coord.put("h/a", b"2")
    await coord.delete("h/b")
    await coord.put("h/c", b"1")
    at1 = await coord.range("h/", revision=r1)
    assert [(kv.key, kv.value) for kv in at1.kvs] == [("h/a", b"1")]
    at3 = await coord.range("h/", revision=r3)
    assert [(kv.key, kv.value, kv.version) for kv in at3.kvs] == [("h/a", b"2", 2), ("h/b", b"1", 1)]
    now = await coord.range("h/")
    assert [kv.key for kv in now.kvs] == ["h/a", "h/c"]


async def test_txn_runs_the_branch_its_compares_select(coord: Coordination) -> None:
    rev = await coord.put("t", b"v1")
    ok = await coord.txn(
        [Compare.mod("t", "==", rev), Compare.value("t", "==", b"v1"), Compare.version("t", "==", 1)],
        [Put("t", b"v2"), Put("t2", b"x"), Get("t")],
        [Get("t")],
    )
    assert ok.succeeded and ok.revision == rev + 1 == await coord.revision()
    assert ok.responses[0] is None and ok.responses[1] is None
    got = ok.responses[2]
    assert got is not None and [(kv.value, kv.version) for kv in got.kvs] == [(b"v2", 2)]

    # The same compare again is stale: the failure branch runs and nothing is written.
    ko = await coord.txn([Compare.mod("t", "==", rev)], [Put("t", b"v3")], [Get("t"), Delete("t2")])
    assert not ko.succeeded
    assert ko.responses[0] is not None and ko.responses[0].kvs[0].value == b"v2"
    assert await coord.get("t2") is None
    assert ko.revision == await coord.revision()


async def test_txn_compare_operators_and_missing_keys(coord: Coordination) -> None:
    rev = await coord.put("n", b"b")

    async def holds(c: Compare) -> bool:
        return (await coord.txn([c], [], [])).succeeded

    assert await holds(Compare.mod("n", ">", rev - 1))
    assert not await holds(Compare.mod("n", "<", rev))
    assert await holds(Compare.create("n", "!=", 0))
    assert await holds(Compare.value("n", ">", b"a"))
    assert await holds(Compare.value("n", "<", b"c"))
    assert await holds(Compare.value("n", "!=", b"x"))
    # A missing key has revisions and version 0; a value comparison on it always fails.
    assert await holds(Compare.create("missing", "==", 0))
    assert await holds(Compare.version("missing", "==", 0))
    assert not await holds(Compare.value("missing", "!=", b"x"))


async def test_create_if_absent_has_one_winner(coord: Coordination) -> None:
    async def create(i: int) -> bool:
        res = await coord.txn([Compare.create("once", "==", 0)], [Put("once", str(i).encode())], [])
        return res.succeeded

    wins = await asyncio.gather(*(create(i) for i in range(8)))
    assert sum(wins) == 1
    kv = await coord.get("once")
    assert kv is not None and kv.value == str(wins.index(True)).encode()


async def test_txn_prefix_ops(coord: Coordination) -> None:
    await coord.put("p/1", b"a")
    await coord.put("p/2", b"b")
    res = await coord.txn([], [Get("p/", prefix=True), Delete("p/", prefix=True), Get("p/", prefix=True)])
    first, _, after = res.responses
    assert first is not None and [kv.key for kv in first.kvs] == ["p/1", "p/2"]
    assert after is not None and after.kvs == []


async def test_watch_from_a_past_revision_replays_history_in_order(coord: Coordination) -> None:
    r1 = await coord.put("w/a", b"1")
    await coord.put("other", b"x")
    await coord.put("w/b", b"1")
    res = await coord.txn([], [Put("w/a", b"2"), Delete("w/b")])
    async with coord.watch("w/", start_revision=r1) as watcher:
        events = await take(watcher, 4)
    assert [(e.type, e.kv.key, e.kv.value) for e in events] == [
        ("put", "w/a", b"1"),
        ("put", "w/b", b"1"),
        ("put", "w/a", b"2"),
        ("delete", "w/b", b""),
    ]
    assert events[0].revision == r1
    assert events[2].revision == events[3].revision == res.revision  # one txn, one revision
    assert events[2].kv.version == 2 and events[2].kv.create_revision == r1
    assert events[3].prev_kv is not None and events[3].prev_kv.value == b"1"


async def test_watch_from_now_sees_only_new_events(coord: Coordination) -> None:
    await coord.put("now/old", b"x")
    async with coord.watch("now/") as watcher:
        # Entering the watcher pins "now": everything written afterwards is delivered.
        first = asyncio.ensure_future(take(watcher, 3))
        rev = await coord.put("now/new", b"1")
        await coord.put("elsewhere", b"1")
        await coord.put("now/new", b"2")
        await coord.delete("now/old")
        events = await first
    assert [(e.type, e.kv.key) for e in events] == [("put", "now/new"), ("put", "now/new"), ("delete", "now/old")]
    assert events[0].revision == rev
    assert [e.revision for e in events] == sorted(e.revision for e in events)


async def test_prefixes_isolate_handles(backend: Backend) -> None:
    a = await backend.open("a/")
    b = await backend.open("b/")
    await a.put("k", b"from a")
    await b.put("k", b"from b")
    ka, kb = await a.get("k"), await b.get("k")
    assert ka is not None and kb is not None and (ka.value, kb.value) == (b"from a", b"from b")
    assert [kv.key for kv in (await a.range("")).kvs] == ["k"]
    async with a.watch("", start_revision=1) as watcher:
        events = await take(watcher, 1)
    assert events[0].kv.value == b"from a"
    assert await b.delete("", prefix=True) == 1
    assert await a.get("k") is not None


async def test_concurrent_writes_each_get_a_revision(coord: Coordination) -> None:
    revs = await asyncio.gather(*(coord.put(f"c/{i}", b"v") for i in range(50)))
    assert len(set(revs)) == 50
    start = min(revs)
    async with coord.watch("c/", start_revision=start) as watcher:
        events = await take(watcher, 50)
    assert [e.revision for e in events] == sorted(revs)


@pytest.mark.parametrize("n", [300])
async def test_watch_keeps_up_with_a_burst(coord: Coordination, n: int) -> None:
    async with coord.watch("burst/") as watcher:
        reader = asyncio.ensure_future(take(watcher, n, timeout=30))
        sem = asyncio.Semaphore(16)

        async def put(i: int) -> None:
            async with sem:
                await coord.put(f"burst/{i % 7}", str(i).encode())

        await asyncio.gather(*(put(i) for i in range(n)))
        events = await reader
    revs = [e.revision for e in events]
    assert revs == sorted(revs) and len(set(revs)) == n
