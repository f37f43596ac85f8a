"""A whole agola (every role, host executor driver) on loopback, and headless Chromium.

Chromium is Debian's (``/usr/bin/chromium``), driven by Playwright for Python: ``playwright
install`` is never run (it would download browsers). The stack runs in a background thread with
its own event loop (``tests/client/stack.py``); the CLI runs in worker threads, because
Playwright's sync API keeps an event loop in the test's thread.

The stack is shared by every module of tests/web (package scope); each module has its own browser
(module scope), so the asyncio tests of ``test_web_parts.py`` never run beside Playwright's loop.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import pytest
from click.testing import CliRunner

from agola.cli.main import agola
from agola.services import registry
from agola.services.role import RoleHost
from tests.client.stack import ALL, RoleStack
from tests.support.services import missing

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ADMIN = "web-test-admin-token-0123456789abcdefghijkl"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "web"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

_pool = ThreadPoolExecutor(max_workers=2)


@attrs.frozen
class Web:
    stack: RoleStack
    url: str
    other_origin_port: int
    tmp: Path

    def cli(self, token: str, *args: str) -> str:
        """The CLI in a worker thread (it runs its own asyncio loop); its stdout."""
        def run() -> Any:
            return CliRunner().invoke(agola, ["--gateway-url", self.url, "--token", token, *args])
        result = _pool.submit(run).result(120)
        assert result.exit_code == 0, result.output
        return str(result.stdout)

    def user(self, name: str) -> str:
        self.cli(ADMIN, "user", "create", name)
        return self.cli(ADMIN, "user", "token", "create", name, "web").strip()

    def repo(self, name: str, pipeline: str) -> Path:
        repo = self.tmp / name
        (repo / ".agola").mkdir(parents=True)
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        (repo / ".agola" / "config.yml").write_text(pipeline)
        return repo

    def api(self, token: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """A call of the public API (``/api/v1alpha`` + ``path``; ``token`` "": anonymous); its JSON answer."""
        headers = {"Content-Type": "application/json", **({"Authorization": f"token {token}"} if token else {})}
        req = urllib.request.Request(f"{self.url}/api/v1alpha{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                data = resp.read()
        except urllib.error.HTTPError as err:
            raise AssertionError(f"{method} {path}: {err.code} {err.read().decode()}") from None
        return json.loads(data) if data else None

    def restart(self) -> None:
        """Stop every role and start them again on the same ports and data (``agola serve`` restarted)."""
        stack = self.stack

        async def restart() -> None:
            assert stack.host is not None
            await stack.host.stop()
            roles = [registry.load_role(c)(stack.config) for c in registry.ordered(set(stack.components))]
            stack.host = RoleHost(roles, shutdown_timeout=5)
            await stack.host.start()

        asyncio.run_coroutine_threadsafe(restart(), stack.loop).result(120)

    def direct_run(self, token: str, repo: Path, branch: str) -> str:
        out = self.cli(token, "directrun", "start", "-C", str(repo), "--branch", branch, "--json")
        [run_id] = json.loads(out)["run_ids"]
        return str(run_id)


class _Blank(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>another web client</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="package")
def other_site() -> Iterator[int]:
    """A page on another origin (another port): the home of another web client."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Blank)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="package")
def web(other_site: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    tmp = tmp_path_factory.mktemp("web")
    other = other_site
    stack = RoleStack(tmp, ALL, extra={"gateway": f"  adminToken: {ADMIN}\n  unsecureCookies: true\n",
                                       "executor": "  driver: {type: host}\n"})
    gw = stack.config.gateway
    # The page of another web client allowed to call the API (CORS); localhost:<port> is not.
    stack.config = attrs.evolve(stack.config, gateway=attrs.evolve(
        gw, web=attrs.evolve(gw.web, allowed_origins=(f"http://127.0.0.1:{other}",))))
    stack.start()
    try:
        yield Web(stack, stack.url, other, tmp)
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        missing("Debian's chromium at /usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright (pip install -e '.[test]')")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
