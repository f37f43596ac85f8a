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
from collections.abc import AsyncIterable, AsyncIterator

import attrs

CHUNK_SIZE = 1024 * 1024
# S3's limit on key length (bytes, UTF-8); posix is held to it too so both backends agree.
MAX_PATH_BYTES = 1024


@attrs.frozen
class ObjectInfo:
    path: str
    size: int
    # Unix seconds (float). 0 for directory entries.
    last_modified: float
    # Only in non-recursive listings: a common prefix ("dir/"), not an object.
    is_dir: bool = False


def validate_path(path: object) -> str:
    """Return ``path`` if it is a valid object name (any value may be given), else raise ``BadRequest``.

    Valid: non-empty ``/``-separated segments, none empty, ``.`` or ``..``; no leading ``/``,
    no NUL, no backslash, at most ``MAX_PATH_BYTES`` UTF-8 bytes.
    """
    from agola.errors import BadRequest

    if not isinstance(path, str) or not path:
        raise BadRequest("empty object path")
    if "\x00" in path or "\\" in path:
        raise BadRequest(f"invalid object path {path!r}: NUL or backslash")
    if path.startswith("/"):
        raise BadRequest(f"invalid object path {path!r}: absolute")
    if any(seg in ("", ".", "..") for seg in path.split("/")):
        raise BadRequest(f"invalid object path {path!r}: empty, '.' or '..' segment")
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"invalid object path {path!r}: not valid UTF-8") from None
    if len(encoded) > MAX_PATH_BYTES:
        raise BadRequest(f"object path longer than {MAX_PATH_BYTES} bytes")
    return path


def validate_prefix(prefix: str) -> str:
    """Like ``validate_path`` for listing prefixes and ``start_after``: may be empty or end with ``/``."""
    if prefix == "":
        return prefix
    validate_path(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


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

    async def __aenter__(self) -> ObjectReader:
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
