"""A configstore world for tests: a ConfigState plus helpers that run operations and apply their
plans, as the readdb will once they are committed."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any, TypeVar

from agola.services.configstore import ops
from agola.services.configstore.ops import Env, Plan
from agola.services.configstore.state import ConfigState
from agola.types.configstore import (
    CreateUserLARequest,
    CreateUserRequest,
    Organization,
    Parent,
    Project,
    ProjectGroup,
    RemoteSource,
    Secret,
    User,
    Variable,
    VariableValue,
)

R = TypeVar("R")

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def deterministic_env() -> Env:
    counter = itertools.count(1)
    tokens = itertools.count(1)

    def new_id() -> str:
        return f"00000000-0000-4000-8000-{next(counter):012d}"

    return Env(new_id=new_id, now=lambda: NOW, new_secret=lambda: "s" * 40, new_token=lambda: f"token{next(tokens):035d}")


class World:
    def __init__(self) -> None:
        self.state = ConfigState()
        self.env = deterministic_env()

    def run(self, plan: Plan[R]) -> R:
        plan.apply_to(self.state)
        return plan.result

    def user(self, name: str, la: CreateUserLARequest | None = None) -> User:
        return self.run(ops.create_user(self.state, CreateUserRequest(name, la), self.env))

    def org(self, name: str, visibility: str = "public", creator: str = "") -> Organization:
        return self.run(ops.create_org(self.state, Organization(name=name, visibility=visibility, creator_user_id=creator), self.env))

    def remote_source(self, name: str, type: str = "gitea", auth_type: str = "password", **kw: Any) -> RemoteSource:
        rs = RemoteSource(name=name, api_url="http://127.0.0.1:3000", type=type, auth_type=auth_type, **kw)
        return self.run(ops.create_remote_source(self.state, rs, self.env))

    def group(self, parent_ref: str, name: str, visibility: str = "public") -> ProjectGroup:
        req = ProjectGroup(name=name, parent=Parent("projectgroup", parent_ref), visibility=visibility)
        return self.run(ops.create_project_group(self.state, req, self.env))

    def project(self, parent_ref: str, name: str, visibility: str = "public", **kw: Any) -> Project:
        kw.setdefault("remote_repository_config_type", "manual")
        req = Project(name=name, parent=Parent("projectgroup", parent_ref), visibility=visibility, **kw)
        return self.run(ops.create_project(self.state, req, self.env))

    def secret(self, parent_type: str, parent_ref: str, name: str, **data: str) -> Secret:
        req = Secret(name=name, type="internal", data=data)
        return self.run(ops.create_secret(self.state, parent_type, parent_ref, req, self.env))

    def variable(self, parent_type: str, parent_ref: str, name: str, *values: VariableValue) -> Variable:
        req = Variable(name=name, values=list(values))
        return self.run(ops.create_variable(self.state, parent_type, parent_ref, req, self.env))
