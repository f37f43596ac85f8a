"""Shared fixtures: real services (etcd, an S3 server, the Docker engine) on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.services import EtcdServer, S3Server, ensure_busybox_image


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """One etcd for the whole run; tests isolate themselves with a unique key prefix."""
    server = EtcdServer(tmp_path_factory.mktemp("etcd") / "data")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def etcd_restartable(tmp_path: Path) -> Iterator[EtcdServer]:
    """A private etcd that a test may stop, kill and start again (fault tests)."""
    server = EtcdServer(tmp_path / "etcd-data")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One moto_server for the whole run; tests isolate themselves with unique bucket names."""
    server = S3Server(tmp_path_factory.mktemp("moto") / "moto.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def busybox_image() -> str:
    """The offline-built ``agola-test/busybox`` image name (Docker engine required)."""
    return ensure_busybox_image()
