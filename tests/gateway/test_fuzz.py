"""Fuzzing every operation of the gateway's OpenAPI document (schemathesis generating requests
from its schemas, valid ones and invalid ones) against real roles in one process, as a user and as
the admin and anonymously: no answer is a 5xx and the server logs no traceback.

The example count is bounded (``EXAMPLES`` per operation, identity and generation mode) to keep the
run short; ``AGOLA_FUZZ_EXAMPLES`` raises it for a longer local run."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode

from tests.client.stack import ADMIN, RoleStack

EXAMPLES = int(os.environ.get("AGOLA_FUZZ_EXAMPLES", "5"))
# Endless by design: an event stream answers 200 and stays open (covered by tests/gateway/test_runs.py).
SKIPPED = {("GET", "/api/v1alpha/runs/events")}


class _Tracebacks(logging.Handler):
    """Every log record carrying an exception, or at ERROR and above, from any thread."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.records.append(record)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoleStack]:
    s = RoleStack(Path(tmp_path_factory.mktemp("fuzz")))
    s.start()
    try:
        yield s
    finally:
        s.stop()


def _call(stack: RoleStack, method: str, path: str, token: str, body: Any = None) -> Any:
    resp = requests.request(method, f"{stack.url}/api/v1alpha{path}", json=body, timeout=30,
                            headers={"Authorization": f"token {token}"})
    assert resp.status_code < 300, resp.text
    return resp.json() if resp.content else None


def _seed(stack: RoleStack) -> tuple[str, dict[str, str]]:
    """A user with a token, an organization, a project group and a variable: path parameters that
    exist, so that generated bodies and queries reach the operations behind the lookups."""
    _call(stack, "POST", "/users", ADMIN, {"username": "fuzzer"})
    token = _call(stack, "POST", "/users/fuzzer/tokens", ADMIN, {"token_name": "fuzz"})["token"]
    _call(stack, "POST", "/orgs", token, {"name": "fuzzorg", "visibility": "public"})
    group = _call(stack, "POST", "/projectgroups", token, {"name": "fuzzgroup", "parent_ref": "user/fuzzer"})
    _call(stack, "POST", f"/projectgroups/{group['id']}/secrets", token, {"name": "fuzzsecret", "data": {"k": "v"}})
    _call(stack, "POST", f"/projectgroups/{group['id']}/variables", token,
          {"name": "fuzzvar", "values": [{"secret_name": "fuzzsecret", "secret_var": "k"}]})
    return token, {"userref": "fuzzer", "orgref": "fuzzorg", "ref": group["id"], "collection": "projectgroups",
                   "name": "fuzzvar", "tokenname": "fuzz"}


@pytest.mark.timeout(600)  # AGOLA_FUZZ_EXAMPLES=50 runs for minutes
def test_no_route_answers_5xx_or_logs_a_traceback(stack: RoleStack) -> None:
    user_token, existing = _seed(stack)
    doc = requests.get(f"{stack.url}/api/v1alpha/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(doc)

    handler = _Tracebacks()
    root = logging.getLogger()
    root.addHandler(handler)
    failures: list[str] = []
    tried: set[str] = set()
    tokens = {"user": user_token, "admin": ADMIN, "anonymous": ""}
    try:
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result  # an operation schemathesis cannot load is a bad document
            op = result.ok()
            if (op.method.upper(), op.path) in SKIPPED:
                continue
            spec = doc["paths"][op.path][op.method.lower()]
            inputs = "requestBody" in spec or any(p["in"] == "query" for p in spec["parameters"])
            # Invalid path parameters are not sent (a string of one character or more is any path
            # segment): negative cases need a body or a query.
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if inputs else (GenerationMode.POSITIVE,):
                _fuzz(stack, op, op.as_strategy(generation_mode=mode), tokens, mode.value, failures, tried)
            names = [p["name"] for p in spec["parameters"] if p["in"] == "path"]
            # Again on objects that exist (deletions left out: the seeds must live on).
            if inputs and names and op.method.upper() != "DELETE" and all(n in existing for n in names):
                paths = {n: existing[n] for n in names}
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    _fuzz(stack, op, op.as_strategy(generation_mode=mode, path_parameters=paths), tokens,
                          f"{mode.value} (existing objects)", failures, tried)
    finally:
        root.removeHandler(handler)
    assert len(tried) == sum(len(v) for v in doc["paths"].values()) - len(SKIPPED)
    assert failures == []
    assert [f"{r.name}: {r.getMessage()}" for r in handler.records] == []


def _fuzz(stack: RoleStack, op: Any, strategy: Any, tokens: dict[str, str], mode: str, failures: list[str],
          tried: set[str]) -> None:
    """``EXAMPLES`` requests drawn from ``strategy``, each sent as every identity of ``tokens``
    ("": no credentials)."""

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), phases=(Phase.generate,))
    @given(case=strategy)
    def run(case: Any) -> None:
        tried.add(f"{op.method.upper()} {op.path}")
        for who, token in tokens.items():
            case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
            if token:
                case.headers["Authorization"] = f"token {token}"
            try:
                resp = case.call(base_url=stack.url, timeout=30)
            except requests.RequestException as exc:
                failures.append(f"{who} {mode} {case.method} {case.formatted_path}: {exc!r}")
                continue
            if resp.status_code >= 500:
                failures.append(f"{who} {mode} {case.method} {case.formatted_path} query={case.query!r} "
                                f"body={case.body!r}: {resp.status_code} {resp.text[:300]}")

    try:
        run()
    except Unsatisfiable:
        pass  # nothing of this mode to generate (a negative case of an operation without inputs)


def test_a_remote_source_api_url_no_client_can_call_is_refused(stack: RoleStack) -> None:
    """Found by fuzzing: such a URL was stored, then every login, registration and account link
    through the remote source was a 500 with a traceback (yarl's ValueError, IDNA's UnicodeError)."""
    url = f"{stack.url}/api/v1alpha"
    headers = {"Authorization": f"token {ADMIN}"}
    good = {"name": "fuzzrs", "type": "gitea", "auth_type": "password", "apiurl": "http://127.0.0.1:1/"}
    assert requests.post(f"{url}/remotesources", json=good, headers=headers, timeout=30).status_code == 201
    for bad in ("\u0000", "http://[::1", "http://127.0.0.1:99999/", "ftp://forge.example.com/",
                "http://" + "a" * 300 + "/", "/api/v1"):
        resp = requests.post(f"{url}/remotesources", json={**good, "name": "fuzzrs2", "apiurl": bad},
                             headers=headers, timeout=30)
        assert (resp.status_code, resp.json()["message"]) == (
            400, "invalid remote source api url: expected an absolute http or https URL with a host"), bad
        resp = requests.put(f"{url}/remotesources/fuzzrs", json={"apiurl": bad}, headers=headers, timeout=30)
        assert resp.status_code == 400, bad
    # The stored one still works: a login through it says the forge cannot be reached.
    resp = requests.post(f"{url}/login", json={"remote_source_name": "fuzzrs", "login_name": "a", "password": "b"},
                         timeout=30)
    assert resp.status_code == 503 and "cannot reach http://127.0.0.1:1" in resp.json()["message"]


def test_a_request_aiohttp_cannot_parse_is_a_400_without_a_traceback(stack: RoleStack) -> None:
    """Found by fuzzing: a request line over 8 KiB was logged by aiohttp at ERROR with a traceback."""
    handler = _Tracebacks()
    seen: list[logging.LogRecord] = []
    server_log = logging.getLogger("aiohttp.server")
    keep = logging.Handler()
    keep.emit = seen.append  # type: ignore[assignment]
    logging.getLogger().addHandler(handler)
    server_log.addHandler(keep)
    try:
        resp = requests.get(f"{stack.url}/api/v1alpha/users/{'a' * 20000}?access_token=not-in-the-logs", timeout=30)
        assert resp.status_code == 400
        resp = requests.get(f"{stack.url}/api/v1alpha/version", headers={"X-Big": "b" * 20000}, timeout=30)
        assert resp.status_code == 400
    finally:
        logging.getLogger().removeHandler(handler)
        server_log.removeHandler(keep)
    assert [f"{r.name}: {r.getMessage()}" for r in handler.records] == []
    lines = [f"{r.levelname} {r.getMessage()}" for r in seen]
    assert lines == ["WARNING Error handling request from 127.0.0.1: LineTooLong"] * 2
