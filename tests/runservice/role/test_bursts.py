"""Bursts of run creations all succeed: 100 concurrent ``POST /runs`` in one run group, then spread
over several groups, give 100 runs with distinct ids and, per project or user, the counters 1..N
without a gap: on one instance with embedded storage, and on two instances sharing etcd and S3
(where the two race each other for the same counters and sequences)."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agola.services.runservice.logic.groups import root_group_id
from agola.types.runservice import Run
from tests.runservice.role.conftest import Instance, create_req, distributed_config, rct
from tests.support.services import free_port

BURST = 100


async def _burst(instances: list[Instance], groups: list[str]) -> list[Run]:
    reqs = [create_req(rct("a"), group=groups[i % len(groups)]) for i in range(BURST)]
    answers = await asyncio.gather(
        *(instances[i % len(instances)].c.create_run(req) for i, req in enumerate(reqs)), return_exceptions=True
    )
    refused = [str(a) for a in answers if isinstance(a, BaseException)]
    assert refused == [], f"{len(refused)} of {BURST} refused, e.g. {refused[:3]}"
    runs = [a.run for a in answers if not isinstance(a, BaseException)]
    assert len({r.id for r in runs}) == BURST
    return runs


def _counters_by_root(runs: list[Run]) -> dict[str, list[int]]:
    by_root: dict[str, list[int]] = defaultdict(list)
    for r in runs:
        by_root[root_group_id(r.group)].append(r.counter)
    return {root: sorted(c) for root, c in by_root.items()}


async def _check_bursts(instances: list[Instance]) -> None:
    tag = uuid.uuid4().hex[:6]
    one = await _burst(instances, [f"/project/{tag}-one/branch/master"])
    assert _counters_by_root(one) == {f"{tag}-one": list(range(1, BURST + 1))}
    # Several projects and users, and several branches of one project (they share its counter).
    groups = [f"/project/{tag}-p{i}/branch/b{j}" for i in range(3) for j in range(2)] + [f"/user/{tag}-u/branch/x"]
    many = await _burst(instances, groups)
    counters = _counters_by_root(many)
    assert sorted(counters) == sorted({f"{tag}-p0", f"{tag}-p1", f"{tag}-p2", f"{tag}-u"})
    for root, got in counters.items():
        assert got == list(range(1, len(got) + 1)), root
    # Run ids sort as runs were created: the second burst's are all newer.
    assert max(r.id for r in one) < min(r.id for r in many)


async def test_a_burst_of_creations_on_embedded_storage(rs: Instance) -> None:
    await _check_bursts([rs])


async def test_a_burst_of_creations_on_two_instances_sharing_etcd_and_s3(
    etcd_restartable: Any, s3_server: Any, make_instance: Callable[..., Any], tmp_path: Path,
) -> None:
    # A private etcd: the queued runs left behind must not reach other tests' schedulers.
    etcd, bucket = etcd_restartable, f"rs-{uuid.uuid4().hex[:8]}"
    a = await make_instance(distributed_config(tmp_path / "a", free_port(), etcd, s3_server, bucket))
    b = await make_instance(distributed_config(tmp_path / "b", free_port(), etcd, s3_server, bucket))
    await _check_bursts([a, b])
