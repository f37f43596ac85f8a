"""Run queries from the readdb, maintenance/export/import, restarts, several instances."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agola.errors import BadRequest, Unavailable
from agola.types.runservice import RunPhase, RunResult
from tests.runservice.role.conftest import Instance, create_req, distributed_config, embedded_config, rct
from tests.runservice.role.test_runs_e2e import wait_run
from tests.support.services import free_port
from tests.support.waiting import wait_for


async def _ids(rs: Instance, **kw: Any) -> list[str]:
    runs, _ = await rs.c.list_runs(**kw)
    return [r.id for r in runs]


async def test_runs_list_filters_and_pagination(rs: Instance) -> None:
    groups = ["/project/p1/branch/master", "/project/p1/branch/feature", "/project/p1/branch/feature02",
              "/project/p2/branch/master"]
    ids: dict[str, list[str]] = {g: [] for g in groups}
    for i in range(8):
        g = groups[i % 4]
        ids[g].append((await rs.c.create_run(create_req(rct("a"), group=g))).run.id)
    every = sorted(i for v in ids.values() for i in v)
    # Cancel the p2 runs: they get archived and are still listed.
    for rid in ids[groups[3]]:
        await rs.c.cancel_run(rid)
    for rid in ids[groups[3]]:
        await wait_run(rs, rid, lambda r: r.archived)

    async def all_listed() -> bool:
        return await _ids(rs, limit=40, asc=True) == every

    await wait_for(all_listed, 10)
    assert await _ids(rs) == sorted(every, reverse=True)
    # Pagination with an exclusive cursor, both directions.
    page1 = await _ids(rs, limit=3)
    page2 = await _ids(rs, limit=3, start=page1[-1])
    assert page1 + page2 == sorted(every, reverse=True)[:6]
    assert await _ids(rs, limit=2, asc=True, start=every[1]) == every[2:4]
    # Group prefix on whole path elements.
    assert await _ids(rs, groups=["/project/p1/branch/feature"], asc=True) == ids[groups[1]]
    assert await _ids(rs, groups=["/project/p1"], asc=True) == sorted(ids[groups[0]] + ids[groups[1]] + ids[groups[2]])
    # Pages of a group spanning several run group paths (merged from one index walk per path).
    p1 = sorted(ids[groups[0]] + ids[groups[1]] + ids[groups[2]], reverse=True)
    first = await _ids(rs, groups=["/project/p1"], limit=2)
    assert first == p1[:2]
    assert await _ids(rs, groups=["/project/p1"], limit=2, start=first[-1]) == p1[2:4]
    assert await _ids(rs, groups=["/project/p1/branch"], limit=40, asc=True) == p1[::-1]
    # Phase and result filters; archived runs included when the phase asks for them.
    assert await _ids(rs, phases=["cancelled"], asc=True) == ids[groups[3]]
    assert await _ids(rs, phases=["queued"], groups=["/project/p2"]) == []
    assert await _ids(rs, results=["success"]) == []
    # lastrun: the newest run of every group.
    assert await _ids(rs, last_run=True, asc=True) == sorted(v[-1] for v in ids.values())
    assert await _ids(rs, last_run=True, groups=["/project/p2"]) == [ids[groups[3]][-1]]
    # Counters are per project: p1 numbered 1..6, p2 1..2.
    counters = sorted(r.counter for r in (await rs.c.list_runs(groups=["/project/p2"]))[0])
    assert counters == [1, 2]
    runs, token = await rs.c.list_runs(change_groups=["g"], limit=1)
    assert token and len(runs) == 1
    with pytest.raises(BadRequest):
        await rs.c.json("GET", "/runs", params={"limit": "-1"})
    with pytest.raises(BadRequest, match="phase"):
        await rs.c.json("GET", "/runs", params={"phase": "bogus"})


async def test_maintenance_export_import_round_trip(rs: Instance, make_instance: Callable[..., Any],
                                                     tmp_path: Path) -> None:
    run_ids = []
    for _ in range(3):
        rid = (await rs.c.create_run(create_req(rct("a")))).run.id
        await rs.c.cancel_run(rid)
        run_ids.append(rid)
    for rid in run_ids:
        await wait_run(rs, rid, lambda r: r.archived)
    exported = b"".join([c async for c in rs.c.export()])
    assert exported.count(b'"data_type":"run"') == 3 and exported.count(b'"data_type":"runconfig"') == 3

    # Import needs maintenance mode; maintenance mode serves only maintenance/export/import.
    with pytest.raises(BadRequest, match="not in maintenance"):
        await rs.c.import_(exported)
    other = await make_instance(embedded_config(tmp_path / "other", free_port()))
    await other.c.set_maintenance(True)
    with pytest.raises(BadRequest, match="already enabled"):
        await other.c.set_maintenance(True)
    await wait_for(lambda: other.role is not None and other.role.maintenance, 5)
    with pytest.raises(Unavailable, match="maintenance"):
        await other.c.list_runs()
    assert await other.c.import_(exported) == 7  # 3 runs, 3 run configs, 1 counter
    await other.c.set_maintenance(False)
    await wait_for(lambda: other.role is not None and not other.role.maintenance, 5)

    async def imported() -> bool:
        try:
            return sorted(await _ids(other, asc=True)) == run_ids
        except Unavailable:
            return False

    await wait_for(imported, 15)
    got = (await other.c.get_run(run_ids[0]))
    assert got.run.phase is RunPhase.CANCELLED and got.run_config is not None
    # The imported counter continues: the next run of p1 is number 4.
    assert (await other.c.create_run(create_req(rct("a")))).run.counter == 4


async def test_restart_mid_run_resumes(make_instance: Callable[..., Any], make_executor: Callable[..., Any],
                                       tmp_path: Path) -> None:
    port = free_port()
    text = embedded_config(tmp_path / "rs", port)
    rs = await make_instance(text)
    ex = await make_executor(rs.url)
    run = (await rs.c.create_run(create_req(rct("a"), rct("b", "a"), rct("c", "b")))).run
    await rs.c.start_run(run.id)
    await ex.wait_tasks(1)
    await ex.run_task("a")
    await ex.wait_tasks(2)
    await ex.report("b", "running", steps=["running"])
    await wait_run(rs, run.id, lambda r: r.tasks["b"].status.value == "running")
    await rs.stop()

    # Same data dir and port: the executor keeps talking to "the" runservice.
    rs2 = await make_instance(text)
    await ex.run_task("b")
    [c] = (await ex.wait_tasks(3))[2:]
    assert c["id"] == "c"
    await ex.run_task("c")
    final = await wait_run(rs2, run.id, lambda r: r.archived)
    assert final.result is RunResult.SUCCESS and final.counter == 1
    log = b"".join([x async for x in rs2.c.get_log(run.id, "a", step=0)])
    assert log == b"step 0 of a\n"
    assert (await rs2.c.create_run(create_req(rct("a")))).run.counter == 2


async def test_two_instances_on_etcd_and_s3_never_double_schedule(
    etcd_server: Any, s3_server: Any, make_instance: Callable[..., Any], make_executor: Callable[..., Any],
    tmp_path: Path,
) -> None:
    bucket = f"rs-{uuid.uuid4().hex[:8]}"
    prefix_note = uuid.uuid4().hex[:6]
    group = f"/project/{prefix_note}/branch/master"
    a = await make_instance(distributed_config(tmp_path / "a", free_port(), etcd_server, s3_server, bucket))
    b = await make_instance(distributed_config(tmp_path / "b", free_port(), etcd_server, s3_server, bucket))
    # One executor registered through each instance.
    ex1 = await make_executor(a.url, f"ex1-{prefix_note}")
    ex2 = await make_executor(b.url, f"ex2-{prefix_note}")
    n = 12
    run = (await a.c.create_run(create_req(*(rct(f"t{i}") for i in range(n)), group=group))).run
    await b.c.start_run(run.id)

    async def all_pushed() -> bool:
        return len(ex1.pushed) + len(ex2.pushed) >= n

    await wait_for(all_pushed, 20)
    await asyncio.sleep(0.5)  # would a second instance push anything more?
    pushed = [t["id"] for t in ex1.pushed + ex2.pushed]
    assert sorted(pushed) == sorted(f"t{i}" for i in range(n))  # each task once, on one executor
    for ex in (ex1, ex2):
        for t in list(ex.pushed):
            await ex.run_task(t["id"])
    final = await wait_run(b, run.id, lambda r: r.archived, timeout=30)
    assert final.result is RunResult.SUCCESS
    # Both readdbs see it.
    for inst in (a, b):
        async def listed(inst: Instance = inst) -> bool:
            return run.id in await _ids(inst, groups=[group])
        await wait_for(listed, 15)
