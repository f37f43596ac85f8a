"""The ObjectStorage interface.

Paths are ``/``-separated relative names (``logs/<id>/data/setup.log``). Every implementation:

- raises ``agola.errors.NotExist`` for a missing object (stat, read, delete), whatever the backend;
- raises ``agola.errors.BadRequest`` for an invalid path (empty, absolute, ``..``, NUL, backslash);
- raises ``agola.errors.Unavailable`` when the backend cannot be reached;
- writes atomically: a reader sees the old object or the whole new one, never a partial one;
- streams: ``read`` and ``write`` move bounded chunks, never the whole object in memory.
"""

from __future__ import annotations

import abc
from typing import AsyncIterable, AsyncIterator

import attrs

CHUNK_SIZE = 1024 * 1024


@attrs.frozen
class ObjectInfo:
    path: str
    size: int
    # Unix seconds (float). 0 for directory entries.
    last_modified: float
    # Only in non-recursive listings: a common prefix ("dir/"), not an object.
    is_dir: bool = False


class ObjectReader(abc.ABC):
    """An open object: iterate it for chunks, or ``read()`` it; close it when done."""

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[bytes]: ...

    @abc.abstractmethod
    async def aclose(self) -> None: ...

    async def read(self) -> bytes:
        """The whole remaining content (use only for small objects)."""
        parts = [chunk async for chunk in self]
        return b"".join(parts)

    async def __aenter__(self) -> "ObjectReader":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class ObjectStorage(abc.ABC):
    @abc.abstractmethod
    async def stat(self, path: str) -> ObjectInfo: ...

    @abc.abstractmethod
    async def read(self, path: str) -> ObjectReader:
        """Open ``path``; ``NotExist`` is raised here, before any byte is read."""

    @abc.abstractmethod
    async def write(
        self,
        path: str,
        data: bytes | AsyncIterable[bytes],
        *,
        size: int | None = None,
        persist: bool = True,
    ) -> None:
        """Store ``data`` (bytes, or an async stream of unknown length when ``size`` is None).

        ``persist`` asks for durability before returning (fsync on posix; S3 is always durable).
        """

    @abc.abstractmethod
    async def delete(self, path: str) -> None: ...

    @abc.abstractmethod
    def list(
        self, prefix: str = "", *, start_after: str = "", recursive: bool = True
    ) -> AsyncIterator[ObjectInfo]:
        """Objects whose path starts with ``prefix``, in lexical order, strictly after ``start_after``.

        Non-recursive: objects directly under the last ``/`` of ``prefix`` plus one ``is_dir`` entry
        per sub-"directory" (path ending in ``/``).
        """

    async def read_all(self, path: str) -> bytes:
        reader = await self.read(path)
        async with reader:
            return await reader.read()

    async def exists(self, path: str) -> bool:
        from agola.errors import NotExist

        try:
            await self.stat(path)
        except NotExist:
            return False
        return True

    async def close(self) -> None:
        """Release clients and connections."""
