"""A stand-in gateway speaking the wire format of spec §6.2 (paths, JSON shapes, status codes,
``{"message", "code"}`` errors). The client's wire compatibility is tested against the real
gateway (test_gateway_client.py, tests/cli/test_cli_real_gateway.py, test_cli_e2e_docker.py);
this fake stays for what needs scripted, deterministic runs in milliseconds: the CLI's output
formatting and ``--follow`` timing (lines arriving while a step runs, approval). What those tests
rely on is checked on this fake and on the real gateway alike by test_gateway_contract.py.

It keeps its state in memory, records every request, and scripts runs: a direct run gets one task
``task01`` whose ``run`` step prints a few lines over a short time (so ``--follow`` is exercised
live) and fails when the run variable ``FAIL`` is set. ``/repos/...`` is served by the real
gitserver code on a temp dir, so pushes are real git pushes.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
from aiohttp import web

from agola.errors import BadRequest, Forbidden, NotExist, Unauthorized
from agola.services.gitserver.api import MAX_PUSH_KEY, STORE_KEY
from agola.services.gitserver.api import handle as git_handle
from agola.services.gitserver.repos import RepoStore
from agola.util.http import API_PREFIX, json_response, make_app, read_json
from tests.support.services import free_port

ADMIN_TOKEN = "admintoken"
P = API_PREFIX


@attrs.define
class Recorded:
    method: str
    path: str  # raw, still percent-encoded
    query: str
    body: Any
    authorization: str


@attrs.define
class FakeState:
    users: dict[str, dict[str, Any]] = attrs.Factory(dict)  # name -> {id, username, tokens{name: value}}
    orgs: dict[str, dict[str, Any]] = attrs.Factory(dict)
    projects: dict[str, dict[str, Any]] = attrs.Factory(dict)  # path -> project
    secrets: dict[tuple[str, str], list[dict[str, Any]]] = attrs.Factory(dict)
    variables: dict[tuple[str, str], list[dict[str, Any]]] = attrs.Factory(dict)
    runs: dict[str, dict[str, Any]] = attrs.Factory(dict)
    logs: dict[tuple[str, str, str], bytes] = attrs.Factory(dict)
    created_runs: list[dict[str, Any]] = attrs.Factory(list)  # createrun request bodies
    requests: list[Recorded] = attrs.Factory(list)
    return_run_ids: bool = False
    needs_approval: bool = False  # task01 waits for approval before starting
    step_lines: int = 3
    line_interval: float = 0.05
    ids: Any = attrs.Factory(lambda: itertools.count(1))


def _user_json(u: dict[str, Any]) -> dict[str, Any]:
    return {"id": u["id"], "username": u["username"], "tokens": sorted(u["tokens"]), "linked_accounts": []}


class FakeGateway:
    def __init__(self, repos_dir: Path) -> None:
        self.state = FakeState()
        self.store = RepoStore(repos_dir)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.url = ""
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()

    # ------------------------------------------------------------ lifecycle (own thread + loop)

    def start(self) -> None:
        self.store.prepare()
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"

        def main() -> None:
            self.loop = asyncio.new_event_loop()
            self.loop.run_until_complete(self._serve(port))
            self._ready.set()
            self.loop.run_forever()

        self._thread = threading.Thread(target=main, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "fake gateway did not start"

    async def _serve(self, port: int) -> None:
        self._runner = web.AppRunner(self.app(), auto_decompress=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()

    def stop(self) -> None:
        assert self.loop is not None and self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        assert self._thread is not None
        self._thread.join(10)

    def add_user(self, name: str, token: str | None = None) -> dict[str, Any]:
        u: dict[str, Any] = {"id": str(uuid.uuid4()), "username": name, "tokens": {}}
        if token:
            u["tokens"]["default"] = token
        self.state.users[name] = u
        return u

    # ------------------------------------------------------------ app

    def app(self) -> web.Application:
        app = make_app("fake-gateway")
        app[STORE_KEY] = self.store
        app[MAX_PUSH_KEY] = 1024 * 1024 * 1024  # the gitserver's default
        app.middlewares.insert(0, self._record)
        r = app.router
        r.add_get(f"{P}/user", self._auth(self.current_user))
        r.add_post(f"{P}/user/createrun", self._auth(self.create_run))
        r.add_get(f"{P}/users", self._auth(self.list_users, admin=True))
        r.add_post(f"{P}/users", self._auth(self.create_user, admin=True))
        r.add_get(f"{P}/users/{{ref}}", self._auth(self.get_user))
        r.add_delete(f"{P}/users/{{ref}}", self._auth(self.delete_user, admin=True))
        r.add_post(f"{P}/users/{{ref}}/tokens", self._auth(self.create_token))
        r.add_delete(f"{P}/users/{{ref}}/tokens/{{name}}", self._auth(self.delete_token))
        r.add_get(f"{P}/orgs", self._auth(self.list_orgs))
        r.add_post(f"{P}/orgs", self._auth(self.create_org))
        r.add_delete(f"{P}/orgs/{{ref}}", self._auth(self.delete_org))
        r.add_get(f"{P}/orgs/{{ref}}/members", self._auth(self.list_members))
        r.add_put(f"{P}/orgs/{{ref}}/members/{{user}}", self._auth(self.add_member))
        r.add_get(f"{P}/projects/{{ref}}", self._auth(self.get_project))
        r.add_post(f"{P}/projects", self._auth(self.create_project))
        r.add_get(f"{P}/projectgroups/{{ref}}/projects", self._auth(self.group_projects))
        for kind in ("projects", "projectgroups"):
            r.add_get(f"{P}/{kind}/{{ref}}/secrets", self._auth(self.list_secrets))
            r.add_post(f"{P}/{kind}/{{ref}}/secrets", self._auth(self.create_secret))
            r.add_get(f"{P}/{kind}/{{ref}}/variables", self._auth(self.list_variables))
            r.add_post(f"{P}/{kind}/{{ref}}/variables", self._auth(self.create_variable))
        r.add_get(f"{P}/runs", self._auth(self.list_runs))
        r.add_get(f"{P}/runs/{{id}}", self._auth(self.get_run))
        r.add_put(f"{P}/runs/{{id}}/actions", self._auth(self.run_action))
        r.add_get(f"{P}/runs/{{id}}/tasks/{{task}}", self._auth(self.get_task))
        r.add_put(f"{P}/runs/{{id}}/tasks/{{task}}/actions", self._auth(self.task_action))
        r.add_get(f"{P}/logs", self._auth(self.get_log))
        r.add_delete(f"{P}/logs", self._auth(self.delete_log))
        r.add_route("*", "/repos/{tail:.*}", git_handle)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        body: Any = None
        if request.path.startswith(P) and request.can_read_body:
            raw = await request.read()
            body = json.loads(raw) if raw else None
        path, _, query = request.raw_path.partition("?")
        self.state.requests.append(Recorded(request.method, path, query, body, request.headers.get("Authorization", "")))
        return await handler(request)

    def _auth(self, handler: Callable[[web.Request, dict[str, Any] | None], Awaitable[web.StreamResponse]],
              admin: bool = False) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            header = request.headers.get("Authorization", "")
            token = header[6:] if header.lower().startswith("token ") else ""
            if not token:
                raise Unauthorized("unauthorized")
            user = None
            if token != ADMIN_TOKEN:
                user = next((u for u in self.state.users.values() if token in u["tokens"].values()), None)
                if user is None:
                    raise Unauthorized("unauthorized")
                if admin:
                    raise Forbidden("only an administrator can do this")
            return await handler(request, user)

        return wrapped

    def _user(self, ref: str) -> dict[str, Any]:
        for u in self.state.users.values():
            if ref in (u["id"], u["username"]):
                return u
        raise NotExist(f"user {ref!r} doesn't exist")

    # ------------------------------------------------------------ users

    async def current_user(self, request: web.Request, me: dict[str, Any] | None) -> web.Response:
        if me is None:
            raise BadRequest("user not authenticated")
        return json_response(_user_json(me))

    async def list_users(self, request: web.Request, me: Any) -> web.Response:
        # by name, descending unless ?asc (the real gateway's default order)
        users = sorted(self.state.users.values(), key=lambda u: u["username"], reverse="asc" not in request.query)
        return json_response([_user_json(u) for u in users])

    async def create_user(self, request: web.Request, me: Any) -> web.Response:
        name = (await read_json(request)).get("username", "")
        if not name:
            raise BadRequest("user name required")
        if name in self.state.users:
            raise BadRequest(f"user with name {name!r} already exists")
        return json_response(_user_json(self.add_user(name)), status=201)

    async def get_user(self, request: web.Request, me: Any) -> web.Response:
        return json_response(_user_json(self._user(request.match_info["ref"])))

    async def delete_user(self, request: web.Request, me: Any) -> web.Response:
        try:
            u = self._user(request.match_info["ref"])
        except NotExist as exc:  # the configstore checks existence as a precondition: 400, not 404
            raise BadRequest(exc.message) from None
        del self.state.users[u["username"]]
        return web.Response(status=204)

    async def create_token(self, request: web.Request, me: dict[str, Any] | None) -> web.Response:
        u = self._user(request.match_info["ref"])
        if me is not None and me["id"] != u["id"]:
            raise Forbidden("cannot create a token for another user")
        name = (await read_json(request)).get("token_name", "")
        if name in u["tokens"]:
            raise BadRequest(f"token with name {name!r} already exists")
        u["tokens"][name] = value = uuid.uuid4().hex
        return json_response({"token": value}, status=201)

    async def delete_token(self, request: web.Request, me: Any) -> web.Response:
        u = self._user(request.match_info["ref"])
        if u["tokens"].pop(request.match_info["name"], None) is None:
            raise NotExist(f"token {request.match_info['name']!r} doesn't exist")
        return web.Response(status=204)

    # ------------------------------------------------------------ orgs, projects

    async def list_orgs(self, request: web.Request, me: Any) -> web.Response:
        return json_response([{k: o[k] for k in ("id", "name", "visibility")} for o in self.state.orgs.values()])

    async def create_org(self, request: web.Request, me: dict[str, Any] | None) -> web.Response:
        body = await read_json(request)
        org = {"id": str(uuid.uuid4()), "name": body["name"], "visibility": body.get("visibility", "public"), "members": {}}
        if me is not None:
            org["members"][me["username"]] = "owner"
        self.state.orgs[org["name"]] = org
        return json_response({k: org[k] for k in ("id", "name", "visibility")}, status=201)

    def _org(self, ref: str) -> dict[str, Any]:
        if ref not in self.state.orgs:
            raise NotExist(f"organization {ref!r} doesn't exist")
        return self.state.orgs[ref]

    async def delete_org(self, request: web.Request, me: Any) -> web.Response:
        self.state.orgs.pop(self._org(request.match_info["ref"])["name"])
        return web.Response(status=204)

    async def list_members(self, request: web.Request, me: Any) -> web.Response:
        org = self._org(request.match_info["ref"])
        members = [{"user": _user_json(self._user(n)), "role": role} for n, role in org["members"].items()]
        return json_response({"organization": {k: org[k] for k in ("id", "name", "visibility")}, "members": members})

    async def add_member(self, request: web.Request, me: Any) -> web.Response:
        org = self._org(request.match_info["ref"])
        u = self._user(request.match_info["user"])
        role = (await read_json(request)).get("role", "member")
        org["members"][u["username"]] = role
        return json_response({"organization": {k: org[k] for k in ("id", "name", "visibility")},
                              "user": _user_json(u), "role": role})

    async def create_project(self, request: web.Request, me: Any) -> web.Response:
        body = await read_json(request)
        path = f"{body['parent_ref']}/{body['name']}"
        p = {"id": str(uuid.uuid4()), "name": body["name"], "path": path, "parent_path": body["parent_ref"],
             "visibility": body.get("visibility", "public"), "global_visibility": body.get("visibility", "public")}
        self.state.projects[path] = p
        return json_response(p, status=201)

    async def get_project(self, request: web.Request, me: Any) -> web.Response:
        ref = request.match_info["ref"]
        for p in self.state.projects.values():
            if ref in (p["id"], p["path"]):
                return json_response(p)
        raise NotExist(f"project {ref!r} doesn't exist")

    async def group_projects(self, request: web.Request, me: Any) -> web.Response:
        ref = request.match_info["ref"]
        return json_response([p for p in self.state.projects.values() if p["parent_path"] == ref])

    # ------------------------------------------------------------ secrets, variables

    def _parent(self, request: web.Request) -> tuple[str, str]:
        return request.path.split("/")[3], request.match_info["ref"]

    async def list_secrets(self, request: web.Request, me: Any) -> web.Response:
        return json_response(self.state.secrets.get(self._parent(request), []))

    async def create_secret(self, request: web.Request, me: Any) -> web.Response:
        body = await read_json(request)
        s = {"id": str(uuid.uuid4()), "name": body["name"], "parent_path": self._parent(request)[1]}
        self.state.secrets.setdefault(self._parent(request), []).append(s)
        return json_response(s, status=201)

    async def list_variables(self, request: web.Request, me: Any) -> web.Response:
        return json_response(self.state.variables.get(self._parent(request), []))

    async def create_variable(self, request: web.Request, me: Any) -> web.Response:
        body = await read_json(request)
        v = {"id": str(uuid.uuid4()), "name": body["name"], "parent_path": self._parent(request)[1],
             "values": [{**x, "matching_secret_parent_path": ""} for x in body["values"]]}
        self.state.variables.setdefault(self._parent(request), []).append(v)
        return json_response(v, status=201)

    # ------------------------------------------------------------ runs

    async def create_run(self, request: web.Request, me: dict[str, Any] | None) -> web.Response:
        if me is None:
            raise BadRequest("user not authenticated")
        body = await read_json(request)
        if body.get("repo_path", "").split("/")[0] != me["id"]:
            raise Unauthorized("repo path must start with your user id")
        if not self.store.root.joinpath(body["repo_path"] + ".git").exists():
            raise BadRequest("repository not pushed")
        self.state.created_runs.append(body)
        run_id = f"{next(self.state.ids):020d}"
        counter = sum(1 for r in self.state.runs.values() if r["group"].startswith(f"/user/{me['id']}/")) + 1
        task_id = f"{run_id}-t1"
        ref = body.get("ref") or (f"refs/tags/{body['tag']}" if body.get("tag") else f"refs/heads/{body.get('branch')}")
        run = {
            "id": run_id, "counter": counter, "name": "run01", "group": f"/user/{me['id']}/branch/x",
            "annotations": {"commit_sha": body["commit_sha"], "ref": ref, "run_type": "user"},
            "phase": "queued", "result": "unknown", "setup_errors": [], "stopping": False,
            "tasks": {task_id: {"id": task_id, "name": "task01", "status": "notstarted", "level": 0, "depends": {},
                                "waiting_approval": False, "approved": False, "approval_annotations": {},
                                "start_time": None, "end_time": None}},
            "tasks_waiting_approval": [], "enqueue_time": "2026-01-01T00:00:00Z", "start_time": None, "end_time": None,
            "can_restart_from_scratch": False, "can_restart_from_failed_tasks": False,
            "steps": [{"phase": "notstarted", "type": "clone", "name": "Clone repository and checkout code", "command": "",
                       "shell": "", "exit_status": None, "start_time": None, "end_time": None, "log_archived": False},
                      {"phase": "notstarted", "type": "run", "name": "hello", "command": "echo hello", "shell": "/bin/sh -e",
                       "exit_status": None, "start_time": None, "end_time": None, "log_archived": False}],
            "setup_phase": "notstarted", "live": asyncio.Event(),
        }
        self.state.runs[run_id] = run
        asyncio.get_running_loop().create_task(self._script(run, task_id, fail=bool(body.get("variables", {}).get("FAIL"))))
        if self.state.return_run_ids:
            return json_response({"runs": [{"id": run_id}]}, status=201)
        return web.Response(status=201)

    async def _script(self, run: dict[str, Any], task_id: str, fail: bool) -> None:
        """Queued -> running; setup; clone step; run step printing lines; then the end."""
        task = run["tasks"][task_id]
        await asyncio.sleep(0.05)
        if self.state.needs_approval:
            task["waiting_approval"] = True
            run["phase"] = "running"
            run["tasks_waiting_approval"] = [task_id]
            while not task["approved"]:
                await asyncio.sleep(0.01)
            task["waiting_approval"], run["tasks_waiting_approval"] = False, []
        run["phase"], task["status"], run["setup_phase"] = "running", "running", "success"
        self.state.logs[(run["id"], task_id, "setup")] = b"pulling image\n"
        for i, step in enumerate(run["steps"]):
            step["phase"] = "running"
            key = (run["id"], task_id, str(i))
            self.state.logs[key] = b""
            lines = [b"cloned\r\n"] if i == 0 else [f"line {n}\r\n".encode() for n in range(self.state.step_lines)]
            for line in lines:
                await asyncio.sleep(self.state.line_interval)
                self.state.logs[key] += line
            failed = fail and i == 1
            step["phase"], step["exit_status"], step["log_archived"] = ("failed", 1, True) if failed else ("success", 0, True)
            if failed:
                break
        task["status"] = "failed" if fail else "success"
        run["phase"], run["result"] = "finished", ("failed" if fail else "success")

    def _run(self, run_id: str) -> dict[str, Any]:
        if run_id not in self.state.runs:
            raise NotExist(f"run {run_id!r} doesn't exist")
        return self.state.runs[run_id]

    @staticmethod
    def _run_json(run: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in run.items() if k not in ("steps", "setup_phase", "live", "group")}

    async def list_runs(self, request: web.Request, me: Any) -> web.Response:
        group = request.query.get("group")
        if not group:
            raise BadRequest("no groups specified")
        rows = [r for r in self.state.runs.values() if r["group"].startswith(group.rstrip("/") + "/")]
        rows.sort(key=lambda r: r["id"], reverse="asc" not in request.query)
        keys = ("id", "counter", "name", "annotations", "phase", "result", "tasks_waiting_approval",
                "enqueue_time", "start_time", "end_time")
        return json_response([{k: r[k] for k in keys} for r in rows][: int(request.query.get("limit", 25))])

    async def get_run(self, request: web.Request, me: Any) -> web.Response:
        return json_response(self._run_json(self._run(request.match_info["id"])))

    async def run_action(self, request: web.Request, me: Any) -> web.Response:
        run = self._run(request.match_info["id"])
        body = await read_json(request)
        if body.get("action_type") not in ("restart", "stop", "cancel"):
            raise BadRequest(f"wrong run action type {body.get('action_type')!r}")
        if body["action_type"] == "cancel" and run["phase"] != "queued":
            raise BadRequest(f"run is not queued but in \"{run['phase']}\" phase")
        return json_response(self._run_json(run))

    def _task(self, request: web.Request) -> tuple[dict[str, Any], str]:
        run = self._run(request.match_info.get("id") or request.query.get("runID", ""))
        task_id = request.match_info.get("task") or request.query.get("taskID", "")
        if task_id not in run["tasks"]:
            raise NotExist(f"task {task_id!r} doesn't exist")
        return run, task_id

    async def get_task(self, request: web.Request, me: Any) -> web.Response:
        run, task_id = self._task(request)
        t = run["tasks"][task_id]
        return json_response({
            "id": t["id"], "name": t["name"], "status": t["status"], "waiting_approval": t["waiting_approval"],
            "approved": t["approved"], "approval_annotations": {},
            "setup_step": {"phase": run["setup_phase"], "name": "Task setup", "start_time": None, "end_time": None},
            "steps": run["steps"], "start_time": None, "end_time": None,
        })

    async def task_action(self, request: web.Request, me: Any) -> web.Response:
        run, task_id = self._task(request)
        if (await read_json(request)).get("action_type") != "approve":
            raise BadRequest("wrong task action type")
        if not run["tasks"][task_id]["waiting_approval"]:
            raise BadRequest(f"task {task_id} is not waiting for an approval")
        run["tasks"][task_id]["approved"] = True
        return web.Response(status=200)

    async def get_log(self, request: web.Request, me: Any) -> web.StreamResponse:
        run, task_id = self._task(request)
        step = "setup" if "setup" in request.query else request.query.get("step", "")
        key = (run["id"], task_id, step)
        if key not in self.state.logs:
            raise NotExist("log doesn't exist")
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        sent = 0
        while True:
            data = self.state.logs[key]
            if len(data) > sent:
                await resp.write(data[sent:])
                sent = len(data)
            done = step == "setup" or run["steps"][int(step)]["phase"] != "running"
            if "follow" not in request.query or (done and sent == len(self.state.logs[key])):
                break
            await asyncio.sleep(0.01)
        await resp.write_eof()
        return resp

    async def delete_log(self, request: web.Request, me: Any) -> web.Response:
        run, task_id = self._task(request)
        step = "setup" if "setup" in request.query else request.query.get("step", "")
        if self.state.logs.pop((run["id"], task_id, step), None) is None:
            raise NotExist("log doesn't exist")
        return web.Response(status=204)
