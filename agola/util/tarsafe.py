"""Safe tar archives: streaming extraction and filtering of archives we do not trust.

Every archive that crosses a trust boundary goes through here: workspace and cache archives made
from what a task left in its container, archives read back from storage, checkouts. The rules are
the same everywhere, and an offending entry is named in the error:

* names are relative and normalised: an absolute name (``/etc/x``) or one with a ``..`` component
  (``../x``, ``a/../../x``) is rejected;
* symbolic links must point inside the destination: absolute targets and targets that climb out
  of it are rejected, unless the caller passes ``external_links=True`` (workspaces and caches:
  a Python virtualenv links to ``/usr/bin/python3``); such a link is then only data, since nothing
  is ever written *through* a link; hard links must name an earlier entry of the same archive;
* no entry may go *through* a symbolic link (``link -> somewhere`` then ``link/file``), whether the
  link came from the archive or already existed in the destination;
* device files, FIFOs and other special entries are rejected;
* modes are masked to the permission bits (no setuid/setgid), ownership is not restored.

Everything is streamed: tarfile's ``r|`` stream mode reads one header and one member at a time,
so an archive of any size needs only a small buffer. ``extract_async`` bridges an async byte
stream (an HTTP body, a Docker archive) into the blocking extractor running in a thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import os
import posixpath
import shutil
import stat
import tarfile
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, TypeVar

from agola.errors import BadRequest, PayloadTooLarge
from agola.util import tarstream

T = TypeVar("T")
COPY_BUFSIZE = 256 * 1024
GATHER_SIZE = 1 << 20  # bytes of an async stream handed to a worker thread at once
_ALLOWED_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE)


class ArchiveTooLarge(PayloadTooLarge):
    """An archive being written went over its size limit."""


class UnsafeArchive(BadRequest):
    """An archive entry broke a safety rule; ``entry`` names it."""

    def __init__(self, entry: str, reason: str) -> None:
        super().__init__(f"unsafe archive entry {entry!r}: {reason}")
        self.entry = entry
        self.reason = reason


def clean_name(name: str) -> str | None:
    """The normalised relative name of an entry; ``None`` for the archive root itself.

    Raises ``UnsafeArchive`` for absolute names and names with a ``..`` component.
    """
    if name.startswith("/"):
        raise UnsafeArchive(name, "absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UnsafeArchive(name, "path goes up with '..'")
    if not parts:
        return None
    return "/".join(parts)


def check_link_target(name: str, target: str) -> None:
    """A symlink ``name -> target`` must resolve inside the archive root."""
    if not target:
        raise UnsafeArchive(name, "empty link target")
    if target.startswith("/"):
        raise UnsafeArchive(name, f"link to absolute path {target!r}")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if resolved == ".." or resolved.startswith("../"):
        raise UnsafeArchive(name, f"link {target!r} escapes the destination")


class _Checker:
    """Applies the rules entry by entry, remembering the links the archive itself created."""

    def __init__(self, external_links: bool = False) -> None:
        self.external_links = external_links
        self.symlinks: set[str] = set()
        self.seen: set[str] = set()

    def check(self, member: tarfile.TarInfo, name: str) -> None:
        if member.type not in _ALLOWED_TYPES:
            raise UnsafeArchive(member.name, "device files, FIFOs and special files are not allowed")
        parents = name.split("/")[:-1]
        for i in range(1, len(parents) + 1):
            if "/".join(parents[:i]) in self.symlinks:
                raise UnsafeArchive(member.name, "path goes through a symbolic link")
        if member.issym():
            if self.external_links:
                if not member.linkname:
                    raise UnsafeArchive(member.name, "empty link target")
            else:
                check_link_target(member.name, member.linkname)
            self.symlinks.add(name)
        else:
            self.symlinks.discard(name)
        if member.islnk():
            try:
                target = clean_name(member.linkname)
            except UnsafeArchive:
                target = None
            if target is None or target not in self.seen:
                raise UnsafeArchive(member.name, f"hard link to {member.linkname!r} outside the archive")
            if target in self.symlinks:
                raise UnsafeArchive(member.name, "hard link to a symbolic link")
        self.seen.add(name)


def iter_checked(
    members: Iterable[tarfile.TarInfo], *, external_links: bool = False
) -> Iterator[tuple[tarfile.TarInfo, str]]:
    """Yield ``(member, clean name)`` for every entry (of a ``TarFile``, of
    ``tarstream.iter_members``), raising on the first unsafe one."""
    checker = _Checker(external_links)
    for member in members:
        name = clean_name(member.name)
        if name is None:
            if not member.isdir():
                raise UnsafeArchive(member.name, "the archive root must be a directory")
            continue
        checker.check(member, name)
        yield member, name


# --------------------------------------------------------------------------------------- extract


def _ensure_dirs(root: Path, rel_parts: list[str], entry: str) -> Path:
    """Create (or walk) the parent dirs of an entry, refusing to traverse a symlink on disk."""
    current = root
    for part in rel_parts:
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            os.mkdir(current, 0o755)
            continue
        if stat.S_ISLNK(st.st_mode):
            raise UnsafeArchive(entry, "path goes through a symbolic link")
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafeArchive(entry, f"parent {part!r} is not a directory")
    return current


def _make_room(path: Path, entry: str, overwrite: bool, for_dir: bool) -> bool:
    """Clear the way for a new entry; returns True when an existing directory can be kept."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if for_dir and stat.S_ISDIR(st.st_mode):
        return True
    if not overwrite:
        raise UnsafeArchive(entry, "file already exists")
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)
    return False


def _write_file(src: IO[bytes], path: Path, mode: int) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, mode & 0o777 | 0o600)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(src, out, COPY_BUFSIZE)
        os.fchmod(out.fileno(), mode & 0o777)


def extract(
    fileobj: IO[bytes], dest: str | os.PathLike[str], *, overwrite: bool = True, external_links: bool = False
) -> int:
    """Extract a tar stream (any compression tarfile detects) safely into ``dest``.

    ``dest`` is created if missing and must not be a symlink. Existing directories are merged;
    existing files are replaced when ``overwrite`` else the entry is rejected. Returns the number
    of entries extracted. On an unsafe entry, what was extracted before it stays on disk.
    """
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    if root.is_symlink():
        raise UnsafeArchive(str(dest), "destination is a symbolic link")
    count = 0
    dir_modes: list[tuple[Path, int]] = []
    with tarfile.open(fileobj=fileobj, mode="r|*") as tar:
        for member, name in iter_checked(tar, external_links=external_links):
            parts = name.split("/")
            parent = _ensure_dirs(root, parts[:-1], member.name)
            path = parent / parts[-1]
            if member.isdir():
                if not _make_room(path, member.name, overwrite, for_dir=True):
                    os.mkdir(path, 0o700)
                # Restore directory modes at the end, so a read-only dir can still be filled.
                dir_modes.append((path, member.mode & 0o777 or 0o755))
            elif member.issym():
                _make_room(path, member.name, overwrite, for_dir=False)
                os.symlink(member.linkname, path)
            elif member.islnk():
                _make_room(path, member.name, overwrite, for_dir=False)
                target = root / str(clean_name(member.linkname))
                if os.path.islink(target):
                    raise UnsafeArchive(member.name, "hard link to a symbolic link")
                os.link(target, path, follow_symlinks=False)
            else:
                _make_room(path, member.name, overwrite, for_dir=False)
                src = tar.extractfile(member)
                assert src is not None
                _write_file(src, path, member.mode)
            count += 1
    for path, mode in reversed(dir_modes):
        os.chmod(path, mode | 0o700)
    return count


# ---------------------------------------------------------------------------------------- filter

Rename = Callable[[str, tarfile.TarInfo], "str | None"]


class ArchiveWriter:
    """A tar stream being built from the safe entries of other archives (see ``copy_from``).

    Entries are checked again as written: a name written twice is rejected (two sources would
    silently shadow each other), except directories, which are merged.
    """

    def __init__(self, dst: tarstream.Writable, *, owner: tuple[int, int] = (0, 0), external_links: bool = False,
                 max_size: int | None = None, what: str = "archive") -> None:
        """``max_size``: ``ArchiveTooLarge`` (naming ``what``) before the content of the entries
        would go beyond that many bytes."""
        self._out = tarstream.BlockWriter(dst)
        self._external_links = external_links
        self._checker = _Checker(external_links)
        self._owner = owner
        self._max_size = max_size
        self._what = what
        self.content_size = 0

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._out.close()

    def copy_from(self, src: tarstream.Readable, rename: Rename | None = None) -> int:
        """Copy the entries of tar stream ``src``; ``rename(clean_name, member)`` returns the name
        to write the entry under, or ``None`` to drop it. Returns the number of entries written.

        Only headers are decoded (by ``tarfile``); file data goes from ``src`` to the output in
        big blocks (``agola.util.tarstream``)."""
        renamed: dict[str, str] = {}
        count = 0
        reader = tarstream.open_reader(src)
        for member, name in iter_checked(tarstream.iter_members(reader), external_links=self._external_links):
            new_name = rename(name, member) if rename else name
            new_name = clean_name(new_name) if new_name is not None else None
            if new_name is None:
                continue
            if new_name in self._checker.seen:
                if member.isdir():
                    continue
                raise UnsafeArchive(member.name, f"duplicate destination {new_name!r}")
            info = tarfile.TarInfo(new_name)
            info.type = member.type
            info.mode = member.mode & 0o777
            info.mtime = member.mtime
            info.uid, info.gid = self._owner
            info.size = member.size if member.isreg() else 0
            if member.issym():
                info.linkname = member.linkname
            elif member.islnk():
                target = renamed.get(str(clean_name(member.linkname)))
                if target is None:
                    continue  # the link's target was filtered out: drop the link too
                info.linkname = target
            self._checker.check(info, new_name)
            self._count_size(info.size)
            renamed[name] = new_name
            self._out.header(info)
            if info.size:
                reader.copy_to(info.size, self._out.write)
                self._out.pad(info.size)
            count += 1
        return count

    def _count_size(self, size: int) -> None:
        self.content_size += size
        if self._max_size is not None and self.content_size > self._max_size:
            raise ArchiveTooLarge(f"{self._what} is over its size limit of {self._max_size} bytes")

    async def copy_from_async(self, chunks: AsyncIterator[bytes], rename: Rename | None = None) -> int:
        """``copy_from`` for an async byte stream (run in a worker thread, read chunk by chunk)."""
        return await _in_thread(chunks, lambda reader: self.copy_from(reader, rename))


def filter_archive(
    src: tarstream.Readable,
    dst: tarstream.Writable,
    rename: Rename | None = None,
    *,
    owner: tuple[int, int] = (0, 0),
    external_links: bool = False,
) -> int:
    """Copy the safe entries of a tar stream into a new uncompressed tar stream.

    Every entry is checked *before* renaming, links are rewritten consistently, and the output is
    checked again as it is built, so what comes out is always safe to extract. Every entry gets
    the numeric ``owner`` (uid, gid). Returns the number of entries written.
    """
    with ArchiveWriter(dst, owner=owner, external_links=external_links) as writer:
        return writer.copy_from(src, rename)


# ------------------------------------------------------------------------------- async bridging


class _AsyncChunkReader:
    """A blocking file object (for a worker thread) fed by an async iterator on the event loop."""

    def __init__(self, chunks: AsyncIterator[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self._chunks = chunks
        self._loop = loop
        # A buffer and a read offset: tarfile reads 10 KiB at a time out of 256 KiB chunks, and
        # slicing a bytes buffer on each read would copy the rest of the chunk every time.
        self._buf = bytearray()
        self._pos = 0
        self._eof = False
        self._source_done = False
        self._cancelled = False
        self._pending: concurrent.futures.Future[bytes | None] | None = None

    def cancel(self) -> None:
        """Make the worker thread's next (or current) read fail: its caller was cancelled."""
        self._cancelled = True
        if self._pending is not None:
            self._pending.cancel()

    def _next(self, want: int) -> bytes | None:
        """About ``want`` bytes (or what is left), gathered on the loop: one thread hop per
        ``want`` bytes whatever the stream's chunk size (an HTTP body comes 64 KiB at a time)."""

        async def pull() -> bytes | None:
            parts: list[bytes] = []
            size = 0
            while size < want and not self._source_done:
                try:
                    chunk = await self._chunks.__anext__()
                except StopAsyncIteration:
                    self._source_done = True
                    break
                parts.append(chunk)
                size += len(chunk)
            if not parts:
                return None
            return parts[0] if len(parts) == 1 else b"".join(parts)

        if self._cancelled:
            raise concurrent.futures.CancelledError()
        self._pending = asyncio.run_coroutine_threadsafe(pull(), self._loop)
        try:
            return self._pending.result()
        finally:
            self._pending = None

    def read(self, n: int = -1) -> bytes:
        if 0 < n and self._pos == len(self._buf) and not self._eof:
            # Nothing buffered: hand a chunk that fits over as is (a short read), without copies.
            chunk = self._next(max(n, GATHER_SIZE))
            if chunk is None:
                self._eof = True
                return b""
            if len(chunk) <= n:
                return chunk
            self._buf, self._pos = bytearray(chunk), 0
        while not self._eof and (n < 0 or len(self._buf) - self._pos < n):
            chunk = self._next(max(n, GATHER_SIZE))
            if chunk is None:
                self._eof = True
                continue
            if self._pos:
                del self._buf[: self._pos]
                self._pos = 0
            self._buf += chunk
        end = len(self._buf) if n < 0 else min(len(self._buf), self._pos + n)
        data = bytes(self._buf[self._pos : end])
        self._pos = end
        return data


async def extract_async(
    chunks: AsyncIterator[bytes], dest: str | os.PathLike[str], *, overwrite: bool = True, external_links: bool = False
) -> int:
    """``extract`` for an async byte stream (read chunk by chunk, never buffered whole)."""
    return await _in_thread(
        chunks, lambda reader: extract(reader, dest, overwrite=overwrite, external_links=external_links)
    )


def chunk_reader(chunks: AsyncIterator[bytes]) -> tarstream.Readable:
    """A blocking reader of ``chunks`` for a worker thread; call it on the event loop."""
    return _AsyncChunkReader(chunks, asyncio.get_running_loop())


async def read_async(chunks: AsyncIterator[bytes], fn: Callable[[IO[bytes]], T]) -> T:
    """Run ``fn(reader)`` in a worker thread, ``reader`` being fed by ``chunks`` on this loop."""
    reader = _AsyncChunkReader(chunks, asyncio.get_running_loop())
    try:
        return await asyncio.to_thread(fn, reader)  # type: ignore[arg-type]  # read-only: only read() is called
    except asyncio.CancelledError:
        reader.cancel()  # don't leave the thread waiting on a loop that may be closing
        raise


_in_thread = read_async


async def filter_archive_async(
    chunks: AsyncIterator[bytes],
    dst: IO[bytes],
    rename: Rename | None = None,
    *,
    owner: tuple[int, int] = (0, 0),
    external_links: bool = False,
) -> int:
    """``filter_archive`` for an async byte stream: no copy of the unfiltered tar on disk."""
    return await _in_thread(
        chunks, lambda reader: filter_archive(reader, dst, rename, owner=owner, external_links=external_links)
    )


def is_safe_error(exc: BaseException) -> bool:
    """True for errors that mean "bad archive" rather than "bad machine"."""
    if isinstance(exc, (UnsafeArchive, tarfile.TarError)):
        return True
    return isinstance(exc, OSError) and exc.errno in (errno.ELOOP, errno.EEXIST, errno.ENOTDIR)


# ------------------------------------------------------------------------------------- creation


def create(
    src_dir: str | os.PathLike[str], dst: tarstream.Writable, *, arc_prefix: str = "", owner: tuple[int, int] = (0, 0)
) -> int:
    """Write a tar stream of ``src_dir`` (links stored as links, never followed; specials skipped).

    With ``arc_prefix`` every entry is put under that directory, which gets its own entry first
    (the layout ``docker cp`` produces). Every entry gets the numeric ``owner`` (uid, gid).
    """
    root = Path(src_dir)
    count = 0
    with tarfile.open(fileobj=dst, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]  # only write()
        if arc_prefix:
            info = tar.gettarinfo(str(root), arcname=arc_prefix)
            info.uid, info.gid = owner
            info.uname = info.gname = ""
            tar.addfile(info)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, root)
            for entry in sorted(dirnames + filenames):
                full = os.path.join(dirpath, entry)
                rel = entry if rel_dir == "." else f"{rel_dir}/{entry}"
                st = os.lstat(full)
                if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                    continue
                info = tar.gettarinfo(full, arcname=posixpath.join(arc_prefix, rel) if arc_prefix else rel)
                info.uid, info.gid = owner
                info.uname = info.gname = ""
                if info.isreg():
                    with open(full, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
                count += 1
    return count
