"""Fixtures for the object storage contract: one ``ost`` fixture, parametrized over every backend."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from agola.storage.objectstorage.base import ObjectStorage
from agola.storage.objectstorage.posix import PosixObjectStorage

BACKENDS = ["posix", "s3"]

OstFactory = Callable[[], Awaitable[ObjectStorage]]


def _empty_bucket(s3_server: Any, bucket: str) -> None:
    """Bulk-delete every object (1000 per request), much faster than one delete per object."""
    from minio import Minio
    from minio.deleteobjects import DeleteObject
    from minio.error import S3Error

    client = Minio(
        s3_server.endpoint.split("://", 1)[1],
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        secure=False,
        region=s3_server.region,
    )
    try:
        names = [DeleteObject(o.object_name) for o in client.list_objects(bucket, recursive=True)]
    except S3Error as exc:
        if exc.code == "NoSuchBucket":
            return
        raise
    errors = list(client.remove_objects(bucket, names))
    assert not errors, errors


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
        bucket: str = request.getfixturevalue("s3_bucket")

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

    yield factory
    for ost in opened:
        await ost.close()
    if backend == "s3":
        # The bucket is shared by the module: leave it empty for the next test (and free moto's memory).
        await asyncio.to_thread(_empty_bucket, s3_server, bucket)


@pytest.fixture
async def ost(ost_factory: OstFactory) -> ObjectStorage:
    return await ost_factory()
