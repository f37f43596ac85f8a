"""Build an ObjectStorage from an ``objectStorage`` config section (spec §1.2).

Accepts any object with the attributes of ``agola.config.ObjectStorage``: ``type`` (``posix`` |
``s3``), ``path`` (posix), ``endpoint``, ``bucket``, ``location``, ``access_key``,
``secret_access_key``, ``disable_tls`` (s3); optionally ``fsync`` (posix, default True).

No I/O happens here beyond creating the posix directories: the S3 bucket is created on first use
(``await storage.open()`` forces it), so a role starts even while S3 is briefly unreachable.
"""

from __future__ import annotations

from typing import Any

from agola.errors import BadRequest
from agola.storage.objectstorage.base import ObjectStorage


def open_object_storage(cfg: Any) -> ObjectStorage:
    if cfg is None:
        raise BadRequest("objectStorage: not configured")
    kind = str(getattr(cfg, "type", "") or "")
    if kind == "posix":
        path = getattr(cfg, "path", "")
        if not path:
            raise BadRequest("objectStorage: posix needs a path")
        from agola.storage.objectstorage.posix import PosixObjectStorage

        return PosixObjectStorage(path, fsync=bool(getattr(cfg, "fsync", True)))
    if kind == "s3":
        endpoint = getattr(cfg, "endpoint", "")
        bucket = getattr(cfg, "bucket", "")
        if not endpoint or not bucket:
            raise BadRequest("objectStorage: s3 needs an endpoint and a bucket")
        from agola.storage.objectstorage.s3 import S3ObjectStorage

        return S3ObjectStorage(
            endpoint=endpoint,
            bucket=bucket,
            access_key=getattr(cfg, "access_key", "") or "",
            secret_key=getattr(cfg, "secret_access_key", "") or "",
            location=getattr(cfg, "location", "") or "",
            disable_tls=bool(getattr(cfg, "disable_tls", False)),
        )
    raise BadRequest(f"objectStorage: unknown type {kind!r} (expected 'posix' or 's3')")
