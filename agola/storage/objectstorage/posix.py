"""Object storage on a local directory (the single-process default).

Layout (spec §1.6): ``<base>/data/<object path>`` holds objects, ``<base>/tmp/`` stages writes.
A write goes to a fresh temp file, is flushed (and fsynced when durable), then ``os.replace``-d over
the destination: readers see the old object or the new one, never a partial one. A reader holding
the old file keeps reading the old content after the replace (the inode lives until closed).

Every blocking call runs in a worker thread and moves at most ``CHUNK_SIZE`` bytes at a time, so the
event loop never waits on the disk and memory stays bounded whatever the object size.

Limitation of a file tree (S3 has none): an object name cannot also be a "directory" of another
object (``a`` and ``a/b`` cannot coexist); such a write raises ``BadRequest``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import itertools
import os
import stat as stat_mod
import tempfile
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from pathlib import Path
from typing import IO

from agola.errors import BadRequest, Internal, NotExist
from agola.storage.objectstorage._threads import IO_POOL, Tracked
from agola.storage.objectstorage.base import (
    CHUNK_SIZE,
    ObjectInfo,
    ObjectReader,
    ObjectStorage,
    validate_path,
    validate_prefix,
)
from agola.util.privatefiles import private_dir

# How many listing entries one worker-thread hop produces.
_LIST_BATCH = 256
# Streams move about one CHUNK_SIZE per worker-thread hop, both ways: holding several fresh
# 1 MiB buffers at once defeats malloc's reuse of freed memory (measured up to 5x slower on reads),
# while a hop costs only ~0.1 ms. Small chunks are coalesced up to CHUNK_SIZE.
# Another process's delete may prune the destination's parent between our mkdir and our rename
# (in this process, _tree_lock rules that out).
_REPLACE_ATTEMPTS = 50

_TREE_LOCKS: dict[Path, threading.Lock] = {}
_TREE_LOCKS_GUARD = threading.Lock()


def _tree_lock(data_dir: Path) -> threading.Lock:
    """One lock per data dir in this process: "mkdir parents + rename" vs "unlink + prune parents".

    Held only for those metadata operations, never while data is written or fsynced.
    """
    with _TREE_LOCKS_GUARD:
        return _TREE_LOCKS.setdefault(data_dir, threading.Lock())

# File name limit of common Linux filesystems (ext4, xfs, btrfs, tmpfs).
_MAX_SEGMENT_BYTES = 255

_MISSING_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError)


def _not_exist(path: str) -> NotExist:
    return NotExist(f"object {path!r} does not exist")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_surviving_dir(directory: Path, data_dir: Path) -> None:
    """fsync ``directory``, or its closest ancestor still there (a delete may have pruned it)."""
    while True:
        try:
            _fsync_dir(directory)
            return
        except FileNotFoundError:
            if directory == data_dir:
                raise
            directory = directory.parent


class _StagedFile:
    """A temp file in ``tmp/`` that becomes an object on ``commit`` or vanishes on ``discard``.

    Every method is blocking: call them from a worker thread.
    """

    def __init__(self, tmp_dir: Path) -> None:
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="obj-", suffix=".tmp")
        self.name = Path(name)
        self.file: IO[bytes] = os.fdopen(fd, "wb", buffering=0)
        self.size = 0
        self.io = Tracked()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        while view:
            written = self.file.write(view)
            assert written is not None
            view = view[written:]
            self.size += written

    def write_all(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def commit(self, dest: Path, data_dir: Path, path: str, durable: bool) -> None:
        if durable:
            os.fsync(self.file.fileno())
        self.file.close()
        for attempt in range(_REPLACE_ATTEMPTS):
            try:
                with _tree_lock(data_dir):
                    _make_parents(dest.parent, data_dir, path, durable)
                    os.replace(self.name, dest)
            except FileNotFoundError:
                time.sleep(0.001 * attempt)  # another process pruned an (empty) parent: again
                continue
            except (IsADirectoryError, NotADirectoryError):
                raise BadRequest(f"object path {path!r} clashes with a directory of other objects") from None
            except OSError as exc:
                if exc.errno == errno.ENOTEMPTY:
                    raise BadRequest(f"object path {path!r} clashes with a directory of other objects") from None
                raise
            if durable:
                _fsync_surviving_dir(dest.parent, data_dir)
            return
        raise Internal(f"could not place object {path!r}: its directory keeps disappearing")

    def discard(self) -> None:
        try:
            self.file.close()
        finally:
            try:
                os.unlink(self.name)
            except FileNotFoundError:
                pass  # never created, or committed by a call that finished after a cancellation

    def discard_when_idle(self) -> None:
        """Discard after any call still running in a worker thread (safe while being cancelled)."""
        self.io.then(self.discard)


def _make_parents(directory: Path, data_dir: Path, path: str, durable: bool) -> None:
    """``mkdir -p`` below ``data_dir``; fsync each parent that gained an entry when durable."""
    missing: list[Path] = []
    current = directory
    while current != data_dir and not current.is_dir():
        missing.append(current)
        current = current.parent
    for d in reversed(missing):
        try:
            os.mkdir(d)
        except FileExistsError:
            # Made concurrently by another write (fine), or an object of that name (a clash).
            # os.stat raising FileNotFoundError (pruned meanwhile) makes the caller retry.
            if not stat_mod.S_ISDIR(os.stat(d).st_mode):
                raise BadRequest(f"object path {path!r} clashes with an existing object") from None
            continue
        except NotADirectoryError:
            raise BadRequest(f"object path {path!r} clashes with an existing object") from None
        if durable:
            _fsync_dir(d.parent)


class _PosixReader(ObjectReader):
    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self._io = Tracked()
        self._closed = False

    async def _chunks(self) -> AsyncIterator[bytes]:
        while chunk := await self._io.run(self._file.read, CHUNK_SIZE):
            yield chunk

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._io.then(self._file.close)


class PosixObjectStorage(ObjectStorage):
    def __init__(self, base_dir: str | os.PathLike[str], fsync: bool = True) -> None:
        self.base_dir = Path(base_dir).absolute()
        self.data_dir = self.base_dir / "data"
        self.tmp_dir = self.base_dir / "tmp"
        self.fsync = fsync
        # Construction happens once at start-up: a quick blocking mkdir is fine here.
        # Private (0700): objects hold run logs, archives and the datamanager's data.
        for d in (self.base_dir, self.data_dir, self.tmp_dir):
            private_dir(d)

    def __repr__(self) -> str:
        return f"PosixObjectStorage({str(self.base_dir)!r})"

    def _file(self, path: str) -> Path:
        validate_path(path)
        if any(len(segment.encode()) > _MAX_SEGMENT_BYTES for segment in path.split("/")):
            raise BadRequest(f"object path {path[:80]!r}...: a segment exceeds {_MAX_SEGMENT_BYTES} bytes")
        return self.data_dir / path

    # -- stat / read ---------------------------------------------------------------------------

    async def stat(self, path: str) -> ObjectInfo:
        file = self._file(path)
        return await asyncio.to_thread(self._stat_sync, file, path)

    @staticmethod
    def _stat_sync(file: Path, path: str) -> ObjectInfo:
        try:
            st = os.stat(file)
        except _MISSING_ERRORS:
            raise _not_exist(path) from None
        if not stat_mod.S_ISREG(st.st_mode):
            raise _not_exist(path)
        return ObjectInfo(path=path, size=st.st_size, last_modified=st.st_mtime)

    async def read(self, path: str) -> ObjectReader:
        file = self._file(path)
        opening = IO_POOL.submit(self._open_sync, file, path)
        try:
            return _PosixReader(await asyncio.wrap_future(opening))
        except asyncio.CancelledError:
            opening.add_done_callback(_close_opened)
            raise

    @staticmethod
    def _open_sync(file: Path, path: str) -> IO[bytes]:
        try:
            return open(file, "rb", buffering=0)
        except _MISSING_ERRORS:
            raise _not_exist(path) from None

    # -- write ---------------------------------------------------------------------------------

    async def write(
        self,
        path: str,
        data: bytes | AsyncIterable[bytes],
        *,
        size: int | None = None,
        persist: bool = True,
    ) -> None:
        dest = self._file(path)
        durable = persist and self.fsync
        if isinstance(data, (bytes, bytearray, memoryview)) and len(data) <= CHUNK_SIZE:
            if size is not None and len(data) != size:
                raise BadRequest(f"object {path!r}: got {len(data)} bytes, expected {size}")
            # A small object in one worker-thread hop instead of three (stage, write, commit):
            # the datamanager's sync job writes two per WAL, and the hops were half their CPU.
            await asyncio.wrap_future(
                IO_POOL.submit(_write_small, self.tmp_dir, dest, self.data_dir, path, bytes(data), durable)
            )
            return
        creating = IO_POOL.submit(_StagedFile, self.tmp_dir)
        try:
            staged = await asyncio.wrap_future(creating)
        except asyncio.CancelledError:
            creating.add_done_callback(_discard_created)
            raise
        try:
            if isinstance(data, (bytes, bytearray, memoryview)):
                await staged.io.run(staged.write, data)
            else:
                await self._write_stream(staged, data)
            if size is not None and staged.size != size:
                raise BadRequest(f"object {path!r}: got {staged.size} bytes, expected {size}")
            await staged.io.run(staged.commit, dest, self.data_dir, path, durable)
        except BaseException:
            staged.discard_when_idle()
            raise

    @staticmethod
    async def _write_stream(staged: _StagedFile, data: AsyncIterable[bytes]) -> None:
        # Coalesce small chunks: a chatty stream must not cost one thread hop per few bytes.
        # Pipelined: the next chunk is produced while the previous one is being written.
        pending: list[bytes] = []
        pending_size = 0
        writing: concurrent.futures.Future[None] | None = None
        async for chunk in data:
            if not isinstance(chunk, (bytes, bytearray, memoryview)):
                raise BadRequest(f"object stream yielded {type(chunk).__name__}, not bytes")
            if not isinstance(chunk, bytes):
                chunk = bytes(chunk)  # a caller may reuse its bytearray after yielding it
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= CHUNK_SIZE:
                if writing is not None:
                    await asyncio.wrap_future(writing)
                writing = staged.io.submit(staged.write_all, pending)
                pending, pending_size = [], 0
        if writing is not None:
            await asyncio.wrap_future(writing)
        if pending:
            await staged.io.run(staged.write_all, pending)

    # -- delete --------------------------------------------------------------------------------

    async def delete(self, path: str) -> None:
        file = self._file(path)
        await asyncio.to_thread(self._delete_sync, file, path)

    def _delete_sync(self, file: Path, path: str) -> None:
        with _tree_lock(self.data_dir):
            try:
                if not stat_mod.S_ISREG(os.stat(file).st_mode):
                    raise _not_exist(path)
                os.unlink(file)
            except _MISSING_ERRORS:
                raise _not_exist(path) from None
            # Prune now-empty parents so listings do not report empty "directories".
            parent = file.parent
            while parent != self.data_dir:
                try:
                    os.rmdir(parent)
                except OSError:
                    break  # not empty (or already gone): stop
                parent = parent.parent
        if self.fsync:
            _fsync_surviving_dir(parent, self.data_dir)

    # -- list ----------------------------------------------------------------------------------

    def list(
        self, prefix: str = "", *, start_after: str = "", recursive: bool = True
    ) -> AsyncIterator[ObjectInfo]:
        validate_prefix(prefix)
        return self._list(prefix, start_after, recursive)

    async def _list(self, prefix: str, start_after: str, recursive: bool) -> AsyncIterator[ObjectInfo]:
        entries = self._walk(prefix, start_after, recursive)
        while True:
            batch = await asyncio.to_thread(lambda: list(itertools.islice(entries, _LIST_BATCH)))
            for info in batch:
                yield info
            if len(batch) < _LIST_BATCH:
                return

    def _walk(self, prefix: str, start_after: str, recursive: bool) -> Iterator[ObjectInfo]:
        # Start in the directory holding the prefix's last complete segment ("a/b" -> "a/").
        rel = prefix[: prefix.rfind("/") + 1]
        yield from self._walk_dir(self.data_dir / rel, rel, prefix, start_after, recursive)

    def _walk_dir(
        self, directory: Path, rel: str, prefix: str, start_after: str, recursive: bool
    ) -> Iterator[ObjectInfo]:
        try:
            with os.scandir(directory) as it:
                raw = list(it)
        except (FileNotFoundError, NotADirectoryError):
            return
        # Sort by the name a directory's contents start with ("x/"), so that the walk yields full
        # paths in lexical order: "x-1" < "x/1" < "x0".
        keyed: list[tuple[str, os.DirEntry[str], bool]] = []
        for entry in raw:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            keyed.append((entry.name + "/" if is_dir else entry.name, entry, is_dir))
        keyed.sort(key=lambda item: item[0])
        for key, entry, is_dir in keyed:
            path = rel + key
            if is_dir:
                if not (path.startswith(prefix) or prefix.startswith(path)):
                    continue
                if start_after >= path and not start_after.startswith(path):
                    continue  # everything inside sorts before start_after
                if recursive:
                    yield from self._walk_dir(Path(entry.path), path, prefix, start_after, recursive)
                elif path > start_after and _contains_file(Path(entry.path)):
                    yield ObjectInfo(path=path, size=0, last_modified=0.0, is_dir=True)
                continue
            if not path.startswith(prefix) or path <= start_after:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # deleted while we walked
            if stat_mod.S_ISREG(st.st_mode):
                yield ObjectInfo(path=path, size=st.st_size, last_modified=st.st_mtime)


def _close_opened(opening: concurrent.futures.Future[IO[bytes]]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()


def _write_small(tmp_dir: Path, dest: Path, data_dir: Path, path: str, data: bytes, durable: bool) -> None:
    staged = _StagedFile(tmp_dir)
    try:
        staged.write(data)
        staged.commit(dest, data_dir, path, durable)
    except BaseException:
        staged.discard()
        raise


def _discard_created(creating: concurrent.futures.Future[_StagedFile]) -> None:
    if not creating.cancelled() and creating.exception() is None:
        creating.result().discard()


def _contains_file(directory: Path) -> bool:
    """Whether a directory holds an object anywhere below (empty leftovers are not "dirs")."""
    for _root, _dirs, files in os.walk(directory):
        if files:
            return True
    return False
