"""Data directories are private whatever the umask: storage opened outside ``agola serve`` (tests,
tools) creates 0700 directories, and an old 0755 data directory is tightened."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from agola.storage.coord.embedded import EmbeddedCoordination
from agola.storage.objectstorage.posix import PosixObjectStorage
from agola.util.privatefiles import generated_secret, private_dir, write_private


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_dir_creates_every_missing_level_0700_and_tightens_an_old_leaf(tmp_path: Path) -> None:
    private_dir(tmp_path / "a" / "b")
    assert _mode(tmp_path / "a") == _mode(tmp_path / "a" / "b") == 0o700
    old = tmp_path / "old"
    old.mkdir(mode=0o755)
    private_dir(old)
    assert _mode(old) == 0o700


def test_written_and_generated_secrets_are_0600(tmp_path: Path) -> None:
    write_private(tmp_path / "d" / "f", b"x")
    assert _mode(tmp_path / "d" / "f") == 0o600 and _mode(tmp_path / "d") == 0o700
    value, created = generated_secret(tmp_path / "d" / "s", lambda: "generated")
    assert (value, created) == ("generated", True) and _mode(tmp_path / "d" / "s") == 0o600
    assert generated_secret(tmp_path / "d" / "s", lambda: "other") == ("generated", False)


async def test_storage_opened_outside_serve_is_private(tmp_path: Path) -> None:
    PosixObjectStorage(tmp_path / "ost")
    assert {_mode(p) for p in (tmp_path / "ost", tmp_path / "ost" / "data", tmp_path / "ost" / "tmp")} == {0o700}
    coord = await EmbeddedCoordination.open(tmp_path / "coord", "/t")
    try:
        assert _mode(tmp_path / "coord") == 0o700 and _mode(tmp_path / "coord" / "lock") == 0o600
    finally:
        await coord.close()
