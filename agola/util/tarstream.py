"""Tar streams at memory speed, for ``agola.util.tarsafe``: headers parsed by ``tarfile``, member
data copied in 1 MiB blocks.

``tarfile``'s stream mode (``r|``/``w|``) moves member data 10-16 KiB at a time through buffers
it re-slices on every read and write: about 0.8 s of CPU per GiB even with nothing to check, and
bigger buffers make it worse (its read buffer is sliced for every 512-byte header). Here a header
(with its pax or GNU long-name blocks) is parsed by ``tarfile.TarInfo.fromtarfile`` itself, so
every format ``tarfile`` reads is read the same way, and the data that follows is handed over as
is, in big blocks, with no copy in between.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import tarfile
from collections.abc import Callable, Iterator
from tarfile import (  # type: ignore[attr-defined]  # private to typeshed, public in tarfile since 3.2
    EmptyHeaderError,
    EOFHeaderError,
    InvalidHeaderError,
    SubsequentHeaderError,
    TruncatedHeaderError,
)
from typing import Any, Protocol

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
CHUNK = 1 << 20
ENCODING = tarfile.ENCODING
ERRORS = "surrogateescape"


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class Writable(Protocol):
    def write(self, data: bytes | memoryview, /) -> object: ...


class BlockReader:
    """A forward-only buffered reader over anything with ``read(n)``; knows its offset."""

    def __init__(self, src: Readable) -> None:
        self._src = src
        self._buf = b""
        self._pos = 0
        self._offset = 0  # bytes handed out so far

    def _fill(self, n: int) -> None:
        """Make at least ``n`` bytes available in the buffer, unless the source ends first."""
        avail = len(self._buf) - self._pos
        if avail >= n:
            return
        parts = [self._buf[self._pos:]] if avail else []
        while avail < n:
            data = self._src.read(max(CHUNK, n - avail))
            if not data:
                break
            parts.append(data)
            avail += len(data)
        self._buf = parts[0] if len(parts) == 1 else b"".join(parts)
        self._pos = 0

    def peek(self, n: int) -> bytes:
        self._fill(n)
        return self._buf[self._pos : self._pos + n]

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            raise ValueError("BlockReader.read needs a size")
        self._fill(n)
        data = self._buf[self._pos : self._pos + n]
        self._pos += len(data)
        self._offset += len(data)
        return data

    def tell(self) -> int:
        return self._offset

    def copy_to(self, n: int, write: Callable[[bytes | memoryview], Any] | None) -> None:
        """Hand exactly ``n`` bytes to ``write`` (None: drop them) in big blocks; a short source is
        ``tarfile.ReadError``."""
        remaining = n
        avail = len(self._buf) - self._pos
        if avail:
            take = min(avail, remaining)
            if write is not None:
                write(memoryview(self._buf)[self._pos : self._pos + take])
            self._pos += take
            remaining -= take
        while remaining:
            data = self._src.read(min(CHUNK, remaining))
            if not data:
                raise tarfile.ReadError("unexpected end of data")
            if len(data) > remaining:  # a source that ignores the size asked for
                self._buf, self._pos = data, remaining
                data = data[:remaining]
            if write is not None:
                write(data)
            remaining -= len(data)
        self._offset += n


class _HeaderSource:
    """What ``TarInfo.fromtarfile`` needs of a ``TarFile``: the reader and the decoding settings."""

    def __init__(self, fileobj: BlockReader) -> None:
        self.fileobj = fileobj
        self.encoding = ENCODING
        self.errors = ERRORS
        self.pax_headers: dict[str, str] = {}
        self.offset = 0


def data_size(member: tarfile.TarInfo) -> int:
    """Bytes of data blocks after the header (as ``tarfile`` counts them)."""
    if member.isreg() or member.type not in tarfile.SUPPORTED_TYPES:
        return -(-member.size // BLOCK) * BLOCK
    return 0


def open_reader(src: Readable) -> BlockReader:
    """A reader of the tar stream in ``src``, decompressed when gzip, bzip2 or xz (as ``r|*``)."""
    reader = BlockReader(src)
    magic = reader.peek(6)
    if magic.startswith(b"\x1f\x8b"):
        return BlockReader(gzip.GzipFile(fileobj=reader, mode="rb"))  # type: ignore[call-overload]
    if magic.startswith(b"BZh"):
        return BlockReader(bz2.BZ2File(reader))  # type: ignore[call-overload]
    if magic.startswith(b"\xfd7zXZ\x00"):
        return BlockReader(lzma.LZMAFile(reader))  # type: ignore[arg-type]
    return reader


def iter_members(reader: BlockReader) -> Iterator[tarfile.TarInfo]:
    """Yield each member with ``reader`` at its data; whatever data the caller leaves unread is
    skipped before the next header. Errors follow ``TarFile.next``: a bad first header is
    ``ReadError``, a bad header later ends the archive."""
    source = _HeaderSource(reader)
    while True:
        start = reader.tell()
        try:
            member = tarfile.TarInfo.fromtarfile(source)  # type: ignore[arg-type]
        except SubsequentHeaderError as exc:
            raise tarfile.ReadError(str(exc)) from None
        except EmptyHeaderError:
            if start == 0:
                raise tarfile.ReadError("empty file") from None
            return
        except (EOFHeaderError, InvalidHeaderError, TruncatedHeaderError) as exc:
            if start == 0 and not isinstance(exc, EOFHeaderError):
                raise tarfile.ReadError(str(exc)) from None
            return
        end = reader.tell() + data_size(member)
        yield member
        if reader.tell() < end:
            reader.copy_to(end - reader.tell(), None)


class BlockWriter:
    """Writes tar headers and data blocks to ``dst``; ``close`` ends the archive as ``tarfile`` does."""

    def __init__(self, dst: Writable) -> None:
        self._dst = dst
        self._written = 0

    def write(self, data: bytes | memoryview) -> None:
        self._dst.write(data)
        self._written += len(data)

    def header(self, info: tarfile.TarInfo) -> None:
        self.write(info.tobuf(tarfile.PAX_FORMAT, ENCODING, ERRORS))

    def pad(self, size: int) -> None:
        if size % BLOCK:
            self.write(bytes(BLOCK - size % BLOCK))

    def close(self) -> None:
        end = self._written + 2 * BLOCK
        self.write(bytes(2 * BLOCK + (-end % RECORD)))
        flush = getattr(self._dst, "flush", None)
        if flush is not None:
            flush()
