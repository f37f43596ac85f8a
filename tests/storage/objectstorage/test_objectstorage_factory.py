"""``open_object_storage`` builds the backend a config section names."""

from __future__ import annotations

import uuid
from pathlib import Path

import attrs
import pytest

from agola.errors import BadRequest
from agola.storage.objectstorage.factory import open_object_storage
from agola.storage.objectstorage.posix import PosixObjectStorage
from agola.storage.objectstorage.s3 import S3ObjectStorage
from tests.support.services import S3Server


@attrs.frozen
class Cfg:
    """Shaped like ``agola.config.ObjectStorage``: the factory only reads attributes."""

    type: str = ""
    path: str = ""
    endpoint: str = ""
    bucket: str = ""
    location: str = ""
    access_key: str = ""
    secret_access_key: str = ""
    disable_tls: bool = False


async def test_posix_from_config(tmp_path: Path) -> None:
    ost = open_object_storage(Cfg(type="posix", path=str(tmp_path / "ost")))
    assert isinstance(ost, PosixObjectStorage)
    await ost.write("a", b"1")
    assert (tmp_path / "ost" / "data" / "a").read_bytes() == b"1"


async def test_s3_from_config(s3_server: S3Server) -> None:
    cfg = Cfg(
        type="s3",
        endpoint=f"127.0.0.1:{s3_server.port}",
        disable_tls=True,
        bucket=f"factory-{uuid.uuid4().hex[:12]}",
        location=s3_server.region,
        access_key=s3_server.access_key,
        secret_access_key=s3_server.secret_key,
    )
    ost = open_object_storage(cfg)
    assert isinstance(ost, S3ObjectStorage)
    await ost.write("a", b"1")
    assert await ost.read_all("a") == b"1"
    await ost.close()


def test_real_config_class_is_accepted(tmp_path: Path) -> None:
    from agola.config import ObjectStorage as ObjectStorageConfig

    ost = open_object_storage(ObjectStorageConfig(type="posix", path=str(tmp_path)))
    assert isinstance(ost, PosixObjectStorage)


@pytest.mark.parametrize(
    "cfg",
    [None, Cfg(), Cfg(type="gcs"), Cfg(type="posix"), Cfg(type="s3", bucket="b"), Cfg(type="s3", endpoint="h:1")],
)
def test_incomplete_config_is_rejected(cfg: Cfg | None) -> None:
    with pytest.raises(BadRequest):
        open_object_storage(cfg)
