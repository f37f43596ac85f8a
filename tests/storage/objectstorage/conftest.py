"""Fixtures for the object storage contract: one ``ost`` fixture, parametrized over every backend."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

import pytest

from agola.storage.objectstorage.base import ObjectStorage
from agola.storage.objectstorage.posix import PosixObjectStorage

BACKENDS = ["posix"]

OstFactory = Callable[[], Awaitable[ObjectStorage]]


@pytest.fixture(scope="module")
def s3_bucket(request: pytest.FixtureRequest) -> str:
    """A bucket name unique to this test module (S3 names: lowercase, 3-63 chars)."""
    module = request.module.__name__.rsplit(".", 1)[-1].replace("_", "-").lower()
    return f"{module[:40]}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def ost_factory(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[OstFactory]:
    """Opens storages on the same underlying place (same dir / same bucket), closed at teardown."""
    opened: list[ObjectStorage] = []

    if backend == "posix":
        base = tmp_path / "ost"

        async def factory() -> ObjectStorage:
            ost: ObjectStorage = PosixObjectStorage(base)
            opened.append(ost)
            return ost

    else:
        from agola.storage.objectstorage.s3 import S3ObjectStorage

        s3_server = request.getfixturevalue("s3_server")
        bucket = request.getfixturevalue("s3_bucket")

        async def factory() -> ObjectStorage:
            ost = S3ObjectStorage(
                endpoint=s3_server.endpoint,
                bucket=bucket,
                access_key=s3_server.access_key,
                secret_key=s3_server.secret_key,
                location=s3_server.region,
            )
            opened.append(ost)
            return ost

        # The bucket is shared by the module: start every test from an empty one.
        cleaner = await factory()
        async for info in cleaner.list(""):
            await cleaner.delete(info.path)

    yield factory
    for ost in opened:
        await ost.close()


@pytest.fixture
async def ost(ost_factory: OstFactory) -> ObjectStorage:
    return await ost_factory()
