"""Snapshots in object storage: data statuses, sorted data files and their indexes (spec §4.2).

A data file holds DataEntry JSON documents, one per line, sorted by id; its index maps each id to
its byte offset. A data status lists, per datatype, the files of one complete snapshot in id order
with the last id each one holds. Files are immutable; a checkpoint writes new ones and a new
status last, so a crash leaves the previous snapshot intact.
"""

from __future__ import annotations

import collections
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable

from agola.errors import NotExist
from agola.storage.datamanager.types import (
    Action,
    ActionType,
    CorruptData,
    DataEntry,
    DataFileRef,
    DataStatus,
    Paths,
    decode_index,
    encode_index,
)
from agola.storage.objectstorage.base import ObjectStorage

STATUS_SUFFIX = ".status"


async def list_status_seqs(ost: ObjectStorage, paths: Paths) -> list[str]:
    """Data sequences of every data status in storage, oldest first."""
    seqs = []
    async for info in ost.list(paths.data_dir, recursive=False):
        name = info.path[len(paths.data_dir) :]
        if not info.is_dir and name.endswith(STATUS_SUFFIX):
            seqs.append(name[: -len(STATUS_SUFFIX)])
    return seqs


async def read_status(ost: ObjectStorage, paths: Paths, data_seq: str) -> DataStatus:
    path = paths.data_status(data_seq)
    return DataStatus.from_json(await ost.read_all(path), path)


async def latest_status(ost: ObjectStorage, paths: Paths) -> DataStatus | None:
    seqs = await list_status_seqs(ost, paths)
    # A status listed but gone (a cleaner raced us) falls back to the next newest one.
    for seq in reversed(seqs):
        try:
            return await read_status(ost, paths, seq)
        except NotExist:
            continue
    return None


async def iter_data_file(ost: ObjectStorage, path: str) -> AsyncIterator[DataEntry]:
    """Stream the entries of one data file (bounded memory: one chunk plus one line)."""
    reader = await ost.read(path)
    async with reader:
        async for line in _lines(reader, path):
            yield DataEntry.from_line(line, path)


async def _lines(chunks: AsyncIterable[bytes], path: str) -> AsyncIterator[bytes]:
    # One split per chunk: slicing the rest of the buffer after each line copied it once per line.
    rest = b""
    async for chunk in chunks:
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        for line in lines:
            if line.strip():
                yield line
    if rest.strip():
        yield rest


async def iter_status_entries(
    ost: ObjectStorage, paths: Paths, status: DataStatus, datatype: str
) -> AsyncIterator[DataEntry]:
    for ref in status.files.get(datatype, []):
        path = paths.data_file(datatype, ref.id)
        async for entry in iter_data_file(ost, path):
            if entry.data_type != datatype:
                raise CorruptData(path, f"entry {entry.id!r} has data type {entry.data_type!r}")
            yield entry


def file_for_id(refs: list[DataFileRef], id: str) -> DataFileRef | None:
    """The file whose id range may hold ``id``: the first with ``last_entry_id >= id``."""
    for ref in refs:
        if ref.last_entry_id >= id:
            return ref
    return None


class DataFileWriter:
    """Accumulates sorted entries and writes size-capped data + index files as it goes."""

    def __init__(
        self,
        ost: ObjectStorage,
        paths: Paths,
        datatype: str,
        data_seq: str,
        max_size: int,
    ) -> None:
        self._ost = ost
        self._paths = paths
        self._datatype = datatype
        self._data_seq = data_seq
        self._max_size = max_size
        self._buf: list[bytes] = []
        self._index: dict[str, int] = {}
        self._size = 0
        self._last_id = ""
        self.refs: list[DataFileRef] = []

    async def add(self, entry: DataEntry) -> None:
        line = entry.to_json() + b"\n"
        if self._buf and self._size + len(line) > self._max_size:
            await self.flush()
        self._index[entry.id] = self._size
        self._buf.append(line)
        self._size += len(line)
        self._last_id = entry.id

    async def flush(self) -> None:
        if not self._buf:
            return
        file_id = f"{self._data_seq}-{uuid.uuid4().hex}"
        await self._ost.write(
            self._paths.data_file(self._datatype, file_id), b"".join(self._buf), persist=True
        )
        await self._ost.write(
            self._paths.data_index(self._datatype, file_id), encode_index(self._index), persist=True
        )
        self.refs.append(DataFileRef(file_id, self._last_id))
        self._buf, self._index, self._size = [], {}, 0

    def keep(self, ref: DataFileRef) -> None:
        """Reference an untouched file of the previous snapshot (after flushing pending entries)."""
        assert not self._buf, "flush before keeping a file"
        self.refs.append(ref)


class SnapshotCache:
    """Serves single-object reads from snapshot files: index lookup, then a slice of the file.

    Files are immutable, so raw file bytes and decoded indexes are cached (LRU, bounded by bytes).
    """

    def __init__(self, ost: ObjectStorage, paths: Paths, max_bytes: int) -> None:
        self._ost = ost
        self._paths = paths
        self._max_bytes = max_bytes
        self._files: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._indexes: collections.OrderedDict[str, dict[str, int]] = collections.OrderedDict()
        self._bytes = 0

    async def _cached(self, path: str, load: Callable[[], Awaitable[bytes]]) -> bytes:
        raw = self._files.get(path)
        if raw is not None:
            self._files.move_to_end(path)
            return raw
        raw = await load()
        self._files[path] = raw
        self._bytes += len(raw)
        while self._bytes > self._max_bytes and len(self._files) > 1:
            _, old = self._files.popitem(last=False)
            self._bytes -= len(old)
        return raw

    async def _index(self, path: str) -> dict[str, int]:
        index = self._indexes.get(path)
        if index is None:
            index = decode_index(await self._ost.read_all(path), path)
            self._indexes[path] = index
            if len(self._indexes) > 256:
                self._indexes.popitem(last=False)
        return index

    async def read(self, status: DataStatus, datatype: str, id: str) -> bytes:
        ref = file_for_id(status.files.get(datatype, []), id)
        if ref is None:
            raise NotExist(f"{datatype} {id!r} does not exist")
        index = await self._index(self._paths.data_index(datatype, ref.id))
        offset = index.get(id)
        if offset is None:
            raise NotExist(f"{datatype} {id!r} does not exist")
        path = self._paths.data_file(datatype, ref.id)
        raw = await self._cached(path, lambda: self._ost.read_all(path))
        if offset >= len(raw):
            raise CorruptData(path, f"index offset {offset} beyond end of file")
        end = raw.find(b"\n", offset)
        entry = DataEntry.from_line(raw[offset : end if end >= 0 else len(raw)], path)
        if entry.id != id:
            raise CorruptData(path, f"index points {id!r} at entry {entry.id!r}")
        return entry.data


async def empty_entries() -> AsyncIterator[DataEntry]:
    return
    yield  # pragma: no cover - makes this an async generator


async def merge_entries(
    dt: str, entries: AsyncIterator[DataEntry], actions: list[tuple[str, Action]]
) -> AsyncIterator[DataEntry]:
    """Merge sorted snapshot entries with sorted last actions: a put replaces or inserts, a delete
    removes."""
    i = 0
    async for entry in entries:
        while i < len(actions) and actions[i][0] < entry.id:
            if actions[i][1].action_type is ActionType.PUT:
                yield DataEntry(actions[i][0], dt, actions[i][1].data)
            i += 1
        if i < len(actions) and actions[i][0] == entry.id:
            if actions[i][1].action_type is ActionType.PUT:
                yield DataEntry(entry.id, dt, actions[i][1].data)
            i += 1
            continue
        yield entry
    for id, action in actions[i:]:
        if action.action_type is ActionType.PUT:
            yield DataEntry(id, dt, action.data)
