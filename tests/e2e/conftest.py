"""Fixtures for the end-to-end tests of ``examples/``: every role in one process (embedded storage,
docker executor) and an example copied into a fresh git work tree.

The examples name ``image: busybox``; here it is replaced by the offline-built test image
(``busybox_image``), so the tests never depend on what a user may have tagged ``busybox``.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agola.cli.main import agola
from tests.client.stack import ADMIN, ALL, RoleStack

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def roles(tmp_path: Path, busybox_image: str) -> Iterator[RoleStack]:
    r = RoleStack(tmp_path, ALL, {"executor": "  docker: {network: none}\n  activeTasksLimit: 4\n"})
    r.start()
    try:
        yield r
    finally:
        r.stop()


class Session:
    """A user of the stack: runs CLI commands with their token, as a developer would."""

    def __init__(self, roles: RoleStack, token: str) -> None:
        self.roles = roles
        self.token = token

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(agola, ["--gateway-url", self.roles.url, "--token", self.token, *args])


@pytest.fixture
def user(roles: RoleStack) -> Session:
    admin = Session(roles, ADMIN)
    assert admin.cli("user", "create", "user01").exit_code == 0
    token = admin.cli("user", "token", "create", "user01", "t").stdout.strip()
    return Session(roles, token)


def example_repo(name: str, dest: Path, image: str) -> Path:
    """``examples/<name>`` copied into a new git work tree at ``dest``, with its image replaced."""
    shutil.copytree(EXAMPLES / name, dest)
    for conf in (dest / ".agola").iterdir():
        text = conf.read_text()
        conf.write_text(text.replace("image: busybox", f"image: {image}").replace("image: 'busybox'", f"image: '{image}'"))
    subprocess.run(["git", "init", "-q", str(dest)], check=True)
    return dest
