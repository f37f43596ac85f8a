"""Hardening seen from outside: one ``agola serve --components all`` process on a fresh data dir
(no admin token configured, the host driver), used through the CLI as a user would."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agola.cli.main import agola
from tests.e2e.conftest import example_repo
from tests.e2e.split import ServeProcess
from tests.support.services import free_port

ROLES = ("gateway", "runservice", "executor", "configstore", "gitserver", "notification")


class Served:
    def __init__(self, tmp_path: Path) -> None:
        self.data = tmp_path / "data"
        ports = {r: free_port() for r in ROLES}
        text = f"dataDir: {self.data}\n"
        for role in ROLES:
            text += f"{role}:\n  web: {{listenAddress: '127.0.0.1:{ports[role]}'}}\n"
        text = text.replace("executor:\n", "executor:\n  driver: {type: host}\n")
        self.url = f"http://127.0.0.1:{ports['gateway']}"
        self.process = ServeProcess(tmp_path, "serve", text, "all", self.url)
        self.token = ""

    def cli(self, *args: str, token: str | None = None) -> Result:
        return CliRunner().invoke(agola, ["--gateway-url", self.url, "--token", token or self.token, *args])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(tmp_path)
    s.process.start()
    try:
        admin = (s.data / "gateway" / "admin-token").read_text().strip()
        assert s.cli("user", "create", "user01", token=admin).exit_code == 0
        created = s.cli("user", "token", "create", "user01", "t", token=admin)
        assert created.exit_code == 0, created.output
        s.token = created.stdout.strip()
        yield s
    finally:
        s.process.close()


def _readable_by_others(root: Path) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                continue
            if mode & 0o077:
                found.append(f"{oct(mode & 0o777)} {path.relative_to(root)}")
    return found


def test_every_data_file_is_private_after_a_run(served: Served, tmp_path: Path) -> None:
    repo = example_repo("hello", tmp_path / "hello", "busybox")
    run = served.cli("directrun", "start", "-C", str(repo), "--follow")
    assert run.exit_code == 0, run.output
    assert served.process.terminate() == 0, served.process.stderr[-3000:]

    assert stat.S_IMODE(served.data.stat().st_mode) == 0o700
    for kept in ("configstore/readdb", "configstore/coord/coord.db", "runservice/ost", "gitserver",
                 "executor", "gateway/admin-token"):
        assert (served.data / kept).exists(), kept
    assert _readable_by_others(served.data) == []
