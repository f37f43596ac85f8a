"""``agola serve`` as an operator runs it (a real process), and the role host underneath."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from agola import __version__
from agola.config import parse_config
from agola.services import registry
from agola.services.role import Role, RoleHost, RoleStartError
from agola.util.http import make_app
from tests.support.services import free_port
from tests.support.waiting import wait_for, wait_for_sync

REPO_ROOT = Path(__file__).resolve().parent.parent


def agola_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "agola.cli.main", *args]


def agola_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def run_agola(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(agola_cmd(*args), cwd=REPO_ROOT, env=agola_env(), capture_output=True,
                          text=True, timeout=timeout)


def health(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


class Server:
    """An ``agola serve`` process; stopped by its PID."""

    def __init__(self, tmp_path: Path, config_text: str, components: str) -> None:
        self.config = tmp_path / "config.yml"
        self.config.write_text(config_text)
        self.stderr_path = tmp_path / "serve.stderr"
        self._stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(
            agola_cmd("serve", "--config", str(self.config), "--components", components),
            cwd=tmp_path, env=agola_env(), stdout=subprocess.DEVNULL, stderr=self._stderr)

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def wait_healthy(self, url: str, timeout: float = 30) -> dict[str, Any]:
        def probe() -> dict[str, Any]:
            if self.proc.poll() is not None:
                raise AssertionError(f"agola serve exited with {self.proc.returncode}: {self.stderr}")
            return health(url)

        try:
            return wait_for_sync(probe, timeout=timeout, interval=0.05, message=f"{url}/health")
        except TimeoutError as exc:
            if isinstance(exc.__cause__, AssertionError):
                raise exc.__cause__ from None
            raise

    def terminate(self, timeout: float = 15) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._stderr.close()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for s in started:
        s.close()


def gitserver_config(tmp_path: Path, port: int) -> str:
    return f"dataDir: {tmp_path / 'data'}\ngitserver:\n  web:\n    listenAddress: 127.0.0.1:{port}\n"


# --- the real process ----------------------------------------------------------------------------

def test_serve_gitserver_health_push_and_sigterm(tmp_path: Path, servers: list[Server]) -> None:
    port = free_port()
    server = Server(tmp_path, gitserver_config(tmp_path, port), "gitserver")
    servers.append(server)
    url = f"http://127.0.0.1:{port}"
    assert server.wait_healthy(url) == {"status": "ok", "role": "gitserver", "version": __version__}

    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"}
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "commit", "-q", "--allow-empty", "-m", "x"]):
        subprocess.run(cmd, cwd=work, env=env, check=True, capture_output=True, timeout=30)
    push = ["git", "push", "-q", f"{url}/repos/u/r.git", "main"]
    anonymous = subprocess.run(push, cwd=work, env=env, capture_output=True, timeout=30)
    assert anonymous.returncode != 0, "anonymous pushes are refused (git asks for credentials)"
    assert not (tmp_path / "data" / "gitserver" / "u").exists()
    # No token configured: `agola serve` generated one under dataDir, private to the agola user.
    token = (tmp_path / "data" / "internal-api-token").read_text().strip()
    authorized = ["git", "-c", f"http.extraHeader=Authorization: token {token}", *push[1:]]
    subprocess.run(authorized, cwd=work, env=env, check=True, capture_output=True, timeout=30)
    assert (tmp_path / "data" / "gitserver" / "u" / "r.git" / "refs" / "heads" / "main").is_file()

    assert server.terminate() == 0
    with pytest.raises(OSError):
        health(url)


def test_serve_all_starts_every_implemented_role(tmp_path: Path, servers: list[Server]) -> None:
    ports = {name: free_port() for name in ("gateway", "runservice", "executor", "configstore", "gitserver",
                                            "notification")}
    text = f"dataDir: {tmp_path / 'data'}\nexecutor:\n  docker: {{network: host}}\n" + "".join(
        f"{name}:\n  web: {{listenAddress: '127.0.0.1:{port}'}}\n" for name, port in ports.items())
    server = Server(tmp_path, text, "all")
    servers.append(server)
    implemented = [n for n in registry.implemented_components() if n in ports]
    assert "gitserver" in implemented
    for name in implemented:
        assert server.wait_healthy(f"http://127.0.0.1:{ports[name]}", timeout=60)["role"] == name
    assert server.terminate(timeout=30) == 0


def test_a_role_failing_at_start_exits_non_zero_with_its_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        (tmp_path / "config.yml").write_text(gitserver_config(tmp_path, port))
        result = run_agola("serve", "--config", str(tmp_path / "config.yml"), "--components", "gitserver")
    assert result.returncode != 0
    assert "component gitserver failed to start" in result.stderr
    assert "address already in use" in result.stderr.lower()


def test_unknown_component_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text(f"dataDir: {tmp_path}\n")
    result = run_agola("serve", "--config", str(tmp_path / "config.yml"), "--components", "gitserver,gatewy")
    assert result.returncode != 0
    assert 'unknown component "gatewy"' in result.stderr
    result = run_agola("serve", "--config", str(tmp_path / "config.yml"))
    assert result.returncode != 0
    assert "no enabled components" in result.stderr


def test_invalid_config_lists_every_problem(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text("gitserver:\n  web: {listenAddress: nope}\n  typo: 1\n")
    result = run_agola("serve", "--config", str(tmp_path / "config.yml"), "--components", "gitserver")
    assert result.returncode != 0
    assert "gitserver.dataDir: required" in result.stderr
    assert 'gitserver.web.listenAddress: "nope" has no port' in result.stderr
    (tmp_path / "config.yml").write_text("dataDir: [\n")
    result = run_agola("serve", "--config", str(tmp_path / "config.yml"), "--components", "gitserver")
    assert result.returncode != 0
    assert "YAML syntax error at line 2, column 1" in result.stderr


def test_unknown_keys_are_warned_on_start(tmp_path: Path, servers: list[Server]) -> None:
    port = free_port()
    server = Server(tmp_path, gitserver_config(tmp_path, port) + "  gatewayURL: http://x\n", "gitserver")
    servers.append(server)
    server.wait_healthy(f"http://127.0.0.1:{port}")
    assert "gitserver.gatewayURL: unknown key (ignored)" in server.stderr
    assert server.terminate() == 0


def test_help_lists_commands_and_roles() -> None:
    result = run_agola("--help")
    assert result.returncode == 0
    for command in ("serve", "version", "pipeline"):
        assert command in result.stdout
    result = run_agola("serve", "--help")
    assert result.returncode == 0
    for role in registry.ROLES:
        assert role in result.stdout
    assert run_agola("--version").stdout.strip() == f"agola version {__version__}"


# --- registry and role host, in process --------------------------------------------------------

def test_only_roles_listed_as_such_are_not_implemented(monkeypatch: pytest.MonkeyPatch) -> None:
    assert registry.implemented_components() == list(registry.ROLES)  # every role is built now
    monkeypatch.setattr(registry, "NOT_IMPLEMENTED", frozenset({"notification"}))
    assert not registry.is_implemented("notification")
    with pytest.raises(registry.NotImplementedComponent, match="component notification is not implemented yet"):
        registry.load_role("notification")
    monkeypatch.undo()
    for name in registry.implemented_components():
        assert registry.load_role(name).name == name


def test_a_role_that_cannot_be_imported_is_a_broken_installation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.ROLES, "scheduler", "agola.services.nothere.role:NothereRole")
    assert registry.is_implemented("scheduler")  # never silently "not implemented"
    with pytest.raises(registry.BrokenInstallation,
                       match=r"component scheduler: cannot import agola\.services\.nothere\.role: "
                             r"No module named 'agola\.services\.nothere'"):
        registry.load_role("scheduler")
    monkeypatch.setitem(registry.ROLES, "scheduler", "agola.services.gitserver.role:Nothing")
    with pytest.raises(registry.BrokenInstallation, match="has no Nothing"):
        registry.load_role("scheduler")


def test_serve_fails_loudly_when_a_role_module_is_missing(tmp_path: Path) -> None:
    """What a user saw with a wheel missing the gateway package: now an error, not a warning."""
    (tmp_path / "config.yml").write_text(f"dataDir: {tmp_path / 'data'}\n")
    script = ("import sys; from agola.services import registry; "
              "registry.ROLES['gateway'] = 'agola.services.gatewaygone.role:GatewayRole'; "
              "from agola.cli.main import main; sys.argv[0] = 'agola'; main()")
    result = subprocess.run([sys.executable, "-c", script, "serve", "--config", str(tmp_path / "config.yml"),
                             "--components", "all"], cwd=REPO_ROOT, env=agola_env(), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert "component gateway: cannot import agola.services.gatewaygone.role" in result.stderr
    assert "not implemented" not in result.stderr


class SlowRole(Role):
    """Answers GET /slow after a release event; records its lifecycle."""

    name = "gitserver"  # reuses the gitserver config section for its web settings

    def __init__(self, config: Any, events: list[str], fail_start: bool = False) -> None:
        super().__init__(config)
        self.events = events
        self.fail_start = fail_start
        self.hang_start = False
        self.release = asyncio.Event()
        self.entered = asyncio.Event()

    async def start(self) -> None:
        self.events.append("start")
        if self.fail_start:
            raise RuntimeError("boom")
        if self.hang_start:
            await asyncio.Event().wait()

    async def stop(self) -> None:
        self.events.append("stop")

    def web_app(self) -> web.Application:
        app = make_app("slow")

        async def slow(request: web.Request) -> web.Response:
            self.entered.set()
            await self.release.wait()
            return web.Response(text="done")

        app.router.add_get("/slow", slow)
        return app


def role_config(port: int) -> Any:
    return parse_config(f"gitserver:\n  dataDir: /unused\n  web: {{listenAddress: '127.0.0.1:{port}'}}\n")


async def test_graceful_stop_finishes_in_flight_requests() -> None:
    port = free_port()
    events: list[str] = []
    role = SlowRole(role_config(port), events)
    host = RoleHost([role], shutdown_timeout=10)
    await host.start()
    async with aiohttp.ClientSession() as session:
        request = asyncio.create_task(session.get(f"http://127.0.0.1:{port}/slow"))
        await wait_for(role.entered.is_set, timeout=10)
        stopping = asyncio.create_task(host.stop())
        # New connections are refused while the in-flight request is still running.
        await wait_for(lambda: _refused(port), timeout=10)
        assert not stopping.done()
        role.release.set()
        resp = await request
        assert resp.status == 200 and await resp.text() == "done"
        await stopping
    assert events == ["start", "stop"]


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


async def test_failed_start_stops_the_roles_already_started() -> None:
    first_events: list[str] = []
    second_events: list[str] = []
    first_port = free_port()
    first = SlowRole(role_config(first_port), first_events)
    second = SlowRole(role_config(free_port()), second_events, fail_start=True)
    host = RoleHost([first, second])
    with pytest.raises(RoleStartError, match="component gitserver failed to start: boom"):
        await host.start()
    assert first_events == ["start", "stop"]
    assert second_events == ["start", "stop"]  # stop() also runs after a failed start()
    assert _refused(first_port)


async def test_a_role_reporting_a_fatal_error_ends_the_host() -> None:
    events: list[str] = []
    role = SlowRole(role_config(free_port()), events)
    host = RoleHost([role])
    await host.start()
    waiter = asyncio.create_task(host.wait_failure())
    role.fail(RuntimeError("lost the disk"))
    assert str(await asyncio.wait_for(waiter, 10)) == "lost the disk"
    await host.stop()
    assert events == ["start", "stop"]


async def test_a_stop_signal_during_a_slow_start_stops_cleanly() -> None:
    from agola.cli.serve import _start_unless_stopped

    first_events: list[str] = []
    second_events: list[str] = []
    first_port = free_port()
    first = SlowRole(role_config(first_port), first_events)
    second = SlowRole(role_config(free_port()), second_events)
    second.hang_start = True
    host = RoleHost([first, second])
    stop = asyncio.Event()
    starting = asyncio.create_task(_start_unless_stopped(host, stop))
    await wait_for(lambda: second_events == ["start"], timeout=10)
    stop.set()
    assert await asyncio.wait_for(starting, 10) is False
    assert first_events == ["start", "stop"] and second_events == ["start", "stop"]
    assert _refused(first_port)
