"""Configstore: how fast operations plan on an in-memory state, how fast a run's variables resolve,
and how many user creations per second go through the datamanager (embedded coordination + posix).

The in-memory figures bound what the readdb-backed API can do; the write figure includes the WAL,
the change-group transaction and waiting for the readdb to show the write.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path

from agola.services.configstore import ops
from agola.services.configstore.actions import ActionHandler
from agola.services.configstore.readdb import ConfigReadDB
from agola.services.configstore.state import ConfigState
from agola.services.configstore.tree import RunRef, run_variables
from agola.storage.coord.embedded import EmbeddedCoordination
from agola.storage.datamanager import DataManager, DataManagerOptions
from agola.storage.objectstorage.posix import PosixObjectStorage
from agola.types.configstore import (
    DATATYPES,
    CreateUserRequest,
    Organization,
    Parent,
    Project,
    ProjectGroup,
    Secret,
    Variable,
    VariableValue,
)
from bench.common import BenchRow


def _populated(n_users: int) -> ConfigState:
    state = ConfigState()
    for i in range(n_users):
        ops.create_user(state, CreateUserRequest(f"user{i:05d}")).apply_to(state)
    return state


def plan_rate(n_users: int, n: int) -> float:
    state = _populated(n_users)
    started = time.perf_counter()
    for i in range(n):
        ops.create_user(state, CreateUserRequest(f"new{i:06d}"))
    return n / (time.perf_counter() - started)


def variables_rate(depth: int, n: int) -> float:
    state = ConfigState()
    ops.create_org(state, Organization(name="org01", visibility="public")).apply_to(state)
    parent = "org/org01"
    for level in range(depth):
        ops.create_project_group(state, ProjectGroup(name=f"g{level}", parent=Parent("projectgroup", parent),
                                                     visibility="public")).apply_to(state)
        parent = f"{parent}/g{level}"
        for k in range(5):
            ops.create_secret(state, "projectgroup", parent, Secret(name=f"s{k}", type="internal",
                                                                     data={"v": str(level)})).apply_to(state)
            ops.create_variable(state, "projectgroup", parent, Variable(name=f"V{k}", values=[
                VariableValue(f"s{k}", "v")])).apply_to(state)
    project = ops.create_project(state, Project(name="p1", parent=Parent("projectgroup", parent), visibility="public",
                                                remote_repository_config_type="manual"))
    project.apply_to(state)
    run = RunRef("branch", "refs/heads/master", branch="master")
    p = Parent("project", project.result.id)
    started = time.perf_counter()
    for _ in range(n):
        run_variables(project.result, state.variables_tree(p), state.secrets_tree(p), run)
    return n / (time.perf_counter() - started)


async def write_rate(n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        coord = await EmbeddedCoordination.open(Path(tmp) / "coord", f"bench-{uuid.uuid4().hex[:8]}/")
        ost = PosixObjectStorage(Path(tmp) / "ost")
        dm = DataManager(coord, ost, "configdata", list(DATATYPES), DataManagerOptions(ping_interval=0.1))
        await dm.init()
        await dm.start()
        readdb = ConfigReadDB(dm)
        await readdb.start()
        try:
            cs = ActionHandler(dm, readdb)
            started = time.perf_counter()
            for i in range(n):
                await cs.create_user(CreateUserRequest(f"user{i:05d}"))
            return n / (time.perf_counter() - started)
        finally:
            await readdb.stop()
            await dm.stop()
            await coord.close()
            await ost.close()


async def run(quick: bool = False) -> list[BenchRow]:
    n_users = 1000 if quick else 10000
    plans = plan_rate(n_users, 500 if quick else 5000)
    variables = variables_rate(5, 200 if quick else 2000)
    writes = await write_rate(30 if quick else 200)
    return [
        BenchRow("CS1", f"plan create-user on a state of {n_users} users", plans, None, "ops/s", ">= 2000 ops/s",
                 plans >= 2000),
        BenchRow("CS2", "resolve a run's variables (5 levels x 5 secrets/variables)", variables, None, "ops/s",
                 ">= 500 ops/s", variables >= 500),
        BenchRow("CS3", "create users through datamanager + readdb (embedded)", writes, None, "ops/s",
                 ">= 20 ops/s", writes >= 20),
    ]
