"""Workspace archives and caches in object storage (spec §1.6, §3.11), and their expiry.

* ``workspacearchives/<runTaskID>/data/<step>.tar``: the tar of a ``save_to_workspace`` step,
  fetched from the executor when the task ends (or uploaded by it), with a marker
  ``workspacearchives/<runTaskID>/runs/<runID>`` per run using it.
* ``caches/<key>.tar``: caches; lookup by exact key or by prefix (the newest object whose key
  starts with the prefix wins). A cache is never overwritten: the first upload of a key stays.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from datetime import datetime

from agola.errors import AlreadyExists, NotExist
from agola.services.runservice.logic.fetching import archive_object_path, cache_object_path, validate_cache_key
from agola.storage.objectstorage.base import ObjectInfo, ObjectStorage
from agola.util.log import get_logger

log = get_logger(__name__)

CACHES_PREFIX = "caches/"
WORKSPACES_PREFIX = "workspacearchives/"


async def open_object(ost: ObjectStorage, path: str, what: str) -> tuple[ObjectInfo, AsyncIterator[bytes]]:
    """Stat and open ``path`` (``NotExist`` naming ``what`` before any byte is sent)."""
    try:
        info = await ost.stat(path)
        reader = await ost.read(path)
    except NotExist:
        raise NotExist(f"{what} does not exist") from None

    async def chunks() -> AsyncIterator[bytes]:
        async with reader:
            async for chunk in reader:
                yield chunk

    return info, chunks()


async def workspace_archive(ost: ObjectStorage, task_id: str, step: int) -> tuple[ObjectInfo, AsyncIterator[bytes]]:
    return await open_object(ost, archive_object_path(task_id, step), f"archive of task {task_id} step {step}")


async def find_cache(ost: ObjectStorage, key: str, prefix: bool) -> ObjectInfo:
    """The cache object for ``key``: exact, or the most recently modified one starting with it."""
    validate_cache_key(key)
    if not prefix:
        path = cache_object_path(key)
        try:
            return await ost.stat(path)
        except NotExist:
            raise NotExist(f"cache {key!r} does not exist") from None
    newest: ObjectInfo | None = None
    async for info in ost.list(CACHES_PREFIX + key):
        if info.is_dir or not info.path.endswith(".tar"):
            continue
        if newest is None or info.last_modified >= newest.last_modified:
            newest = info
    if newest is None:
        raise NotExist(f"no cache with prefix {key!r}")
    return newest


async def put_cache(ost: ObjectStorage, key: str, body: AsyncIterable[bytes], size: int | None) -> None:
    """Store a cache unless the key exists (``AlreadyExists``: the caller answers 304)."""
    path = cache_object_path(key)
    if await ost.exists(path):
        raise AlreadyExists(f"cache {key!r} already exists")
    await ost.write(path, body, size=size)


async def expire_objects(ost: ObjectStorage, prefix: str, older_than: datetime) -> int:
    """Delete objects under ``prefix`` last modified before ``older_than``; returns how many."""
    cutoff = older_than.timestamp()
    deleted = 0
    async for info in ost.list(prefix):
        if info.is_dir or info.last_modified >= cutoff:
            continue
        try:
            await ost.delete(info.path)
            deleted += 1
        except NotExist:
            pass
    if deleted:
        log.info("expired objects deleted", prefix=prefix, count=deleted)
    return deleted
