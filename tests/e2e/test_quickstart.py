"""``quickstart.sh`` run as a user would, twice (it must be idempotent), on a private config:
a temporary data dir and free ports, the docker driver, no installation step."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.services import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "quickstart.sh"
ROLES = ("runservice", "executor", "configstore", "gitserver", "notification")


def _config(tmp_path: Path) -> Path:
    text = f"dataDir: {tmp_path / 'data'}\ngateway:\n"
    text += f"  web: {{listenAddress: '127.0.0.1:{free_port()}'}}\n"
    for role in ROLES:
        text += f"{role}:\n  web: {{listenAddress: '127.0.0.1:{free_port()}'}}\n"
    text = text.replace("executor:\n", "executor:\n  docker: {network: none}\n")
    path = tmp_path / "config.yml"
    path.write_text(text)
    return path


def _env(config: Path, **more: str) -> dict[str, str]:
    """The user's environment without agola settings; login profiles under the test's directory."""
    env = {**os.environ, "AGOLA_QUICKSTART_CONFIG": str(config), "AGOLA_QUICKSTART_NO_INSTALL": "1",
           "AGOLA_QUICKSTART_DRIVER": "docker", "XDG_CONFIG_HOME": str(config.parent / "xdg"), **more}
    for name in ("AGOLA_TOKEN", "AGOLA_GATEWAY_URL", "AGOLA_PROFILE"):
        env.pop(name, None)
    return env


def _quickstart(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = _env(config)
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=180)


def test_quickstart_twice_then_stop(tmp_path: Path, busybox_image: str) -> None:
    config = _config(tmp_path)
    state = tmp_path / "data" / "quickstart"
    # The user already has a current profile: the quickstart's becomes current and says how to go back.
    (tmp_path / "xdg" / "agola").mkdir(parents=True)
    (tmp_path / "xdg" / "agola" / "config.yml").write_text(
        "current: prod\nprofiles:\n  prod: {gateway_url: 'https://agola.example.com', token: t}\n")
    try:
        first = _quickstart(config)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "[build] cache: miss" in first.stdout
        assert "[package] package: hello from agola, built from 2 deps" in first.stdout
        assert "==> examples/hello: success" in first.stdout
        assert "The server keeps running" in first.stdout
        # No adminToken in the config: the gateway generated one, private, and the script used it.
        assert "using the admin token the gateway generated" in first.stdout
        generated = tmp_path / "data" / "gateway" / "admin-token"
        assert generated.stat().st_mode & 0o777 == 0o600
        assert generated.read_text().strip() not in first.stdout + (state / "server.log").read_text()
        token = state / "token"
        assert token.stat().st_mode & 0o777 == 0o600
        pid = (state / "server.pid").read_text().strip()
        # A new shell needs no exports: the quickstart saved a login profile.
        assert "saved as the current agola login profile 'quickstart'" in first.stdout
        assert "the current profile was prod: agola profile use prod switches back" in first.stdout
        profiles = tmp_path / "xdg" / "agola" / "config.yml"
        assert profiles.stat().st_mode & 0o777 == 0o600
        whoami = subprocess.run([sys.executable, "-m", "agola.cli.main", "whoami"], env=_env(config),
                                capture_output=True, text=True, timeout=60)
        assert whoami.returncode == 0 and "User:    quickstart" in whoami.stdout, whoami.stdout + whoami.stderr

        # Again: same server, same user and token, same repository, so the cache is hit.
        second = _quickstart(config)
        assert second.returncode == 0, second.stdout + second.stderr
        assert f"agola server already running (pid {pid})" in second.stdout
        assert "reusing the token of user quickstart" in second.stdout
        assert "[build] cache: hit (2 deps restored)" in second.stdout
        assert "run hello #2" in second.stdout
    finally:
        stopped = _quickstart(config, "--stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stdout + stopped.stderr
    assert not (state / "server.pid").exists()
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid), 0)


def test_quickstart_host_driver(tmp_path: Path) -> None:
    """Without Docker (forced here) the quickstart generates a host-driver config and still runs hello."""
    config = _config(tmp_path)
    state = tmp_path / "data" / "quickstart"
    env = _env(config, AGOLA_QUICKSTART_DRIVER="host")
    try:
        done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "using the host driver" in done.stdout
        assert "[package] package: hello from agola, built from 2 deps" in done.stdout
        assert "type: host" in (state / "config-host.yml").read_text()
    finally:
        stopped = _quickstart(config, "--stop")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
