"""WALs in object storage: one header per WAL (the reference's layout) or segments of several WALs.

Layout under ``<base>wals/``::

    status/<seq>.committed           header of one WAL -> data/<file id> (reference layout; read, and
                                     written for the marker WAL of an init)
    status/<last>.<first>.segment    the WALs first..last (contiguous), one WalData JSON per line,
                                     small WALs' actions inline (what the sync job writes)
    data/<file id>                   the actions of one WAL (large WALs; small ones of the old layout)

Objects are listed in name order, which is the order of their last WAL (sequences have a fixed
length). The sync job writes them strictly one after the other, so an object in storage always
means every earlier WAL is there too. After a crash between the write of a segment and the
coordination transaction that records it, the next pass may write a segment overlapping it:
readers skip the WALs they already have (``iter_storage_wals``).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import attrs

from agola.errors import NotExist
from agola.storage.datamanager.types import (
    CorruptData,
    Paths,
    WalData,
    WalHeader,
    WalStatus,
    iter_json_docs,
)
from agola.storage.objectstorage.base import ObjectStorage

HEADER_SUFFIX = ".committed"
SEGMENT_SUFFIX = ".segment"


@attrs.frozen
class StorageWalObject:
    """One object of ``wals/status/``: a header (``first == last``) or a segment."""

    name: str  # the object name under the status dir
    first: str
    last: str

    @property
    def is_segment(self) -> bool:
        return self.name.endswith(SEGMENT_SUFFIX)


def segment_name(first: str, last: str) -> str:
    """The ``segment`` of the WALs first..last (``Paths.wal_segment`` gives its object path)."""
    return f"{last}.{first}"


def parse_object_name(name: str) -> StorageWalObject | None:
    if name.endswith(HEADER_SUFFIX):
        seq = name[: -len(HEADER_SUFFIX)]
        return StorageWalObject(name, seq, seq)
    if name.endswith(SEGMENT_SUFFIX):
        last, _, first = name[: -len(SEGMENT_SUFFIX)].partition(".")
        if first:
            return StorageWalObject(name, first, last)
    return None


async def list_storage_wal_objects(ost: ObjectStorage, paths: Paths, start_after: str = "") -> list[StorageWalObject]:
    """The storage WAL objects holding a WAL after ``start_after`` ("" = all), oldest first."""
    prefix = paths.wal_status_dir
    objects = []
    async for info in ost.list(prefix, start_after=prefix + start_after if start_after else "", recursive=False):
        obj = None if info.is_dir else parse_object_name(info.path[len(prefix) :])
        if obj is not None and obj.last > start_after:
            objects.append(obj)
    return objects


async def last_storage_wal_seq(ost: ObjectStorage, paths: Paths) -> str:
    objects = await list_storage_wal_objects(ost, paths)
    return objects[-1].last if objects else ""


def encode_segment(wal_values: list[bytes]) -> bytes:
    """A segment from the WalData JSON of its WALs, in order (their ``WalStatus`` is ignored)."""
    return b"".join(value + b"\n" for value in wal_values)


async def read_storage_wal_object(ost: ObjectStorage, paths: Paths, obj: StorageWalObject) -> list[WalData]:
    """The WALs of one object, in order (``NotExist`` if a cleaner removed it meanwhile).

    A WAL read from a segment names it (``segment``) when its actions are inline."""
    path = paths.wal_status_dir + obj.name
    raw = await ost.read_all(path)
    if not obj.is_segment:
        header = WalHeader.from_json(raw, path)
        return [WalData(header.wal_data_file_id, WalStatus.COMMITTED_STORAGE, obj.last, header.previous_wal_sequence)]
    name = obj.name[: -len(SEGMENT_SUFFIX)]
    wals = []
    for n, doc in enumerate(iter_json_docs(raw, path)):
        wal = WalData.from_doc(doc, f"{path} (entry {n})")
        wals.append(attrs.evolve(wal, wal_status=WalStatus.COMMITTED_STORAGE,
                                 segment=name if wal.inline_data is not None else ""))
    if not wals or wals[0].wal_sequence != obj.first or wals[-1].wal_sequence != obj.last:
        raise CorruptData(path, "segment does not hold the WALs its name says")
    for prev, wal in itertools.pairwise(wals):
        if wal.previous_wal_sequence != prev.wal_sequence:
            raise CorruptData(path, f"wal {wal.wal_sequence} follows {wal.previous_wal_sequence!r}, "
                                    f"not {prev.wal_sequence!r}")
    return wals


async def iter_storage_wals(ost: ObjectStorage, paths: Paths, start_after: str = "") -> AsyncIterator[WalData]:
    """Every storage WAL after ``start_after``, in order, each once (segments may overlap)."""
    last = start_after
    for obj in await list_storage_wal_objects(ost, paths, start_after):
        for wal in await read_storage_wal_object(ost, paths, obj):
            if last and wal.wal_sequence <= last:
                continue
            yield wal
            last = wal.wal_sequence


async def has_storage_wal(ost: ObjectStorage, paths: Paths, seq: str) -> bool:
    """Whether the WAL ``seq`` is in storage (its own header, or a segment spanning it)."""
    prefix = paths.wal_status_dir
    async for info in ost.list(prefix, start_after=prefix + seq, recursive=False):
        obj = None if info.is_dir else parse_object_name(info.path[len(prefix) :])
        if obj is not None and obj.first <= seq <= obj.last:
            return True
    return False


async def delete_storage_wals(ost: ObjectStorage, paths: Paths, last: str, *, inclusive: bool) -> int:
    """Delete the storage objects whose WALs all come before ``last`` (or are ``last``, with
    ``inclusive``), the data files of their WALs too; returns how many WAL objects went."""
    deleted = 0
    for obj in await list_storage_wal_objects(ost, paths):
        if obj.last > last or (obj.last == last and not inclusive):
            break
        try:
            wals = await read_storage_wal_object(ost, paths, obj)
        except NotExist:
            continue
        for wal in wals:
            if wal.inline_data is None:
                try:
                    await ost.delete(paths.wal_data(wal.wal_data_file_id))
                except NotExist:
                    pass
        try:
            await ost.delete(paths.wal_status_dir + obj.name)
        except NotExist:
            continue
        deleted += 1
    return deleted
