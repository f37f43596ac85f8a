"""Where workspace and cache archives go: the ``ArchiveStore`` interface and a local directory.

The executor writes archives to local files first (``<task dir>/archives/<step>.tar``, which is also
what the reference's ``GET /executor/archives`` serves), then hands the *path* to the store; reads
come back as async byte streams. The runservice-backed store (HTTP: ``/executor/archives``,
``/executor/caches/{key}``) implements the same protocol; ``LocalArchiveStore`` is the one for a
single machine and for tests.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import quote

from agola.errors import BadRequest, NotExist
from agola.roleclients.runservice import RunserviceClient

CHUNK = 1 << 20


class ArchiveStore(Protocol):
    async def put_workspace(self, task_id: str, step: int, archive: Path) -> None:
        """Keep the ``save_to_workspace`` archive of ``step`` of ``task_id``."""

    def get_workspace(self, task_id: str, step: int) -> AsyncIterator[bytes]:
        """Stream a workspace archive; raises ``NotExist`` (on first iteration) when missing."""

    async def cache_exists(self, key: str) -> bool:
        """Whether a cache with exactly this key exists."""

    async def put_cache(self, key: str, archive: Path) -> None:
        """Store a cache; a cache already stored under ``key`` is kept (first writer wins)."""

    async def open_cache(self, prefix: str) -> AsyncIterator[bytes] | None:
        """The most recently stored cache whose key starts with ``prefix``, or None."""


def _check_key(key: str) -> str:
    if not key or len(key) > 200:
        raise BadRequest("cache key must be between 1 and 200 characters")
    return key


class FileChunks:
    """A stored archive that is a local file: an async byte stream like any other, and ``open()``
    for a reader in a worker thread (no hop through the event loop per chunk). ``file``: the
    archive already opened (it stays readable whatever happens to ``path``)."""

    def __init__(self, path: Path, missing: str = "", *, file: BinaryIO | None = None) -> None:
        self.path = path
        self._missing = missing or f"no archive at {path}"
        self._file = file
        self._chunks: AsyncIterator[bytes] | None = None

    def open(self) -> BinaryIO:
        if self._file is not None:
            file, self._file = self._file, None
            return file
        try:
            return open(self.path, "rb")
        except FileNotFoundError:
            raise NotExist(self._missing) from None

    def __aiter__(self) -> FileChunks:
        return self

    async def __anext__(self) -> bytes:
        if self._chunks is None:
            self._chunks = self._stream(self.open())
        return await self._chunks.__anext__()

    @staticmethod
    async def _stream(file: BinaryIO) -> AsyncIterator[bytes]:
        with file:
            while data := await asyncio.to_thread(file.read, CHUNK):
                yield data


class LocalArchiveStore:
    """Archives in a directory: ``workspaces/<task>/<step>.tar`` and ``caches/<escaped key>.tar``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        (self.root / "workspaces").mkdir(parents=True, exist_ok=True)
        (self.root / "caches").mkdir(parents=True, exist_ok=True)

    def _workspace_path(self, task_id: str, step: int) -> Path:
        return self.root / "workspaces" / quote(task_id, safe="") / f"{int(step)}.tar"

    def _cache_path(self, key: str) -> Path:
        return self.root / "caches" / (quote(_check_key(key), safe="") + ".tar")

    async def put_workspace(self, task_id: str, step: int, archive: Path) -> None:
        dest = self._workspace_path(task_id, step)
        dest.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(_copy_atomic, archive, dest)

    def get_workspace(self, task_id: str, step: int) -> FileChunks:
        return FileChunks(self._workspace_path(task_id, step), f"no workspace archive for task {task_id} step {step}")

    async def cache_exists(self, key: str) -> bool:
        return self._cache_path(key).exists()

    async def put_cache(self, key: str, archive: Path) -> None:
        dest = self._cache_path(key)
        if dest.exists():
            return
        await asyncio.to_thread(_copy_atomic, archive, dest)

    async def open_cache(self, prefix: str) -> AsyncIterator[bytes] | None:
        escaped = quote(_check_key(prefix), safe="")
        candidates = [p for p in (self.root / "caches").iterdir() if p.name.startswith(escaped) and p.suffix == ".tar"]
        if not candidates:
            return None
        newest = max(candidates, key=lambda p: p.stat().st_mtime_ns)
        return FileChunks(newest)


def _copy_atomic(src: Path, dest: Path) -> None:
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)  # archives are never changed in place: a second name is a copy
    except OSError:
        shutil.copyfile(src, tmp)  # another file system
    os.replace(tmp, dest)


class RunserviceArchiveStore:
    """Archives kept by the runservice (spec §3.11), through ``agola.roleclients.runservice``.

    Workspace archives stay on the executor by default: the runservice's fetcher pulls
    ``<task dir>/archives/<step>.tar`` from the executor API, as in the reference. With
    ``upload_workspaces`` they are pushed as soon as they are made instead. A workspace this
    executor made and still has (``<tasks_dir>/<task>/archives/<step>.tar``, written whole or
    not at all) is read from there: the same bytes as the runservice's copy, without HTTP.
    """

    def __init__(self, client: RunserviceClient, *, upload_workspaces: bool = False,
                 tasks_dir: Path | None = None) -> None:
        self.client = client
        self.upload_workspaces = upload_workspaces
        self.tasks_dir = tasks_dir

    async def put_workspace(self, task_id: str, step: int, archive: Path) -> None:
        if self.upload_workspaces:
            with open(archive, "rb") as body:  # a file body: sent with its Content-Length
                await self.client.upload_archive(task_id, step, body)

    def get_workspace(self, task_id: str, step: int) -> AsyncIterator[bytes]:
        if self.tasks_dir is not None and task_id not in ("", ".", "..") and "/" not in task_id:
            path = self.tasks_dir / task_id / "archives" / f"{int(step)}.tar"
            try:
                return FileChunks(path, file=open(path, "rb"))  # FileChunks closes it
            except OSError:
                pass  # not made here, or already cleaned up: the runservice has it
        return self.client.get_archive(task_id, step)

    async def cache_exists(self, key: str) -> bool:
        return await self.client.cache_exists(_check_key(key))

    async def put_cache(self, key: str, archive: Path) -> None:
        with open(archive, "rb") as body:
            await self.client.put_cache(_check_key(key), body)  # 304 = someone else saved it: fine

    async def open_cache(self, prefix: str) -> AsyncIterator[bytes] | None:
        stream = self.client.get_cache(_check_key(prefix), prefix=True)
        try:
            first = await stream.__anext__()
        except NotExist:
            return None
        except StopAsyncIteration:
            first = b""

        async def chained() -> AsyncIterator[bytes]:
            if first:
                yield first
            async for chunk in stream:
                yield chunk

        return chained()
