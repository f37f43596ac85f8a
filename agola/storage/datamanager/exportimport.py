"""Export and import (spec §4.8, §3.12): all current data as one self-describing stream.

Format (UTF-8, one JSON document per line)::

    {"format": "agola-datamanager-export", "version": 1, "datatypes": ["user", "org", ...]}
    {"id": "...", "data_type": "user", "data": "<base64>"}
    ...

Entries are grouped by datatype (in the order of the header) and sorted by id within a type,
exactly as the snapshot files hold them; both sides move bounded chunks, never the whole archive.
Import also accepts a stream without the header line (the reference's bare DataEntry stream).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator

from agola.errors import BadRequest, NotExist
from agola.storage.datamanager.checkpoint import fresh_epoch
from agola.storage.datamanager.snapshot import DataFileWriter, iter_status_entries
from agola.storage.datamanager.storagewals import delete_storage_wals
from agola.storage.datamanager.types import DataEntry, DataFileRef, DataStatus, Paths, Seq
from agola.storage.objectstorage.base import ObjectStorage
from agola.util.log import get_logger

log = get_logger(__name__)

EXPORT_FORMAT = "agola-datamanager-export"
EXPORT_VERSION = 1
CHUNK = 64 * 1024
MAX_LINE = 64 * 1024 * 1024
SEQ_MAX = (1 << 64) - 1


def export_header(datatypes: list[str]) -> bytes:
    doc = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "datatypes": datatypes}
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


async def export_stream(
    ost: ObjectStorage, paths: Paths, status: DataStatus | None, datatypes: list[str]
) -> AsyncIterator[bytes]:
    types = list(dict.fromkeys([*datatypes, *(status.files if status else {})]))
    buf = bytearray(export_header(types))
    if status is not None:
        for dt in types:
            async for entry in iter_status_entries(ost, paths, status, dt):
                buf += entry.to_json() + b"\n"
                if len(buf) >= CHUNK:
                    yield bytes(buf)
                    buf.clear()
    if buf:
        yield bytes(buf)


async def _lines(stream: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    buf = b""
    async for chunk in stream:
        buf += chunk
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            line, buf = buf[:nl], buf[nl + 1 :]
            yield line
        if len(buf) > MAX_LINE:
            raise BadRequest("import: line too long")
    if buf:
        yield buf


def _parse_line(line: bytes, n: int) -> object:
    try:
        return json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(f"import: line {n}: invalid JSON") from None


async def write_import_snapshot(
    ost: ObjectStorage,
    paths: Paths,
    datatypes: list[str],
    stream: AsyncIterable[bytes],
    max_file_size: int,
) -> tuple[DataStatus, int]:
    """Validate the stream and write it as a new snapshot (data files, indexes, then the status);
    returns the status and the number of entries.

    The status names every WAL of earlier epochs as already included, so none is ever replayed.
    On a validation error every file written so far is removed and ``BadRequest`` names the line.
    """
    epoch = await fresh_epoch(ost, paths)
    data_seq = str(Seq(epoch, 1))
    files: dict[str, list[DataFileRef]] = {}
    writer: DataFileWriter | None = None
    current, last_id = "", ""
    n = count = 0
    try:
        async for line in _lines(stream):
            n += 1
            if not line.strip():
                continue
            doc = _parse_line(line, n)
            if n == 1 and isinstance(doc, dict) and "format" in doc:
                if doc.get("format") != EXPORT_FORMAT or doc.get("version") != EXPORT_VERSION:
                    raise BadRequest(f"import: line 1: unsupported format {doc.get('format')!r} {doc.get('version')!r}")
                continue
            entry = _entry(doc, n)
            if entry.data_type not in datatypes:
                raise BadRequest(f"import: line {n}: unknown data type {entry.data_type!r}")
            if entry.data_type != current:
                if entry.data_type in files:
                    raise BadRequest(f"import: line {n}: data type {entry.data_type!r} appears again after {current!r}")
                if writer is not None:
                    await writer.flush()
                writer = DataFileWriter(ost, paths, entry.data_type, data_seq, max_file_size)
                files[entry.data_type] = writer.refs
                current, last_id = entry.data_type, ""
            elif entry.id <= last_id:
                raise BadRequest(f"import: line {n}: id {entry.id!r} is not after {last_id!r}")
            assert writer is not None
            await writer.add(entry)
            last_id = entry.id
            count += 1
        if writer is not None:
            await writer.flush()
    except BaseException:
        await _remove(ost, paths, files)
        raise
    # Every WAL of an earlier epoch counts as included (superseded), even one whose header lands
    # late (a sync cut short by the switch to maintenance): InitEtcd never replays it.
    covered = str(Seq(epoch - 1, SEQ_MAX))
    status = DataStatus(data_seq, covered, {dt: refs for dt, refs in files.items() if refs})
    await ost.write(paths.data_status(data_seq), status.to_json(), persist=True)
    log.info("import snapshot written", data_sequence=data_seq, entries=count, base=paths.base)
    return status, count


def _entry(doc: object, n: int) -> DataEntry:
    if not isinstance(doc, dict):
        raise BadRequest(f"import: line {n}: not a data entry")
    try:
        return DataEntry.from_doc(doc, f"line {n}")
    except Exception:  # noqa: BLE001 - any decoding problem is the caller's bad input
        raise BadRequest(f"import: line {n}: not a data entry") from None


async def _remove(ost: ObjectStorage, paths: Paths, files: dict[str, list[DataFileRef]]) -> None:
    for dt, refs in files.items():
        for ref in refs:
            for path in (paths.data_file(dt, ref.id), paths.data_index(dt, ref.id)):
                try:
                    await ost.delete(path)
                except NotExist:
                    pass


async def delete_storage_wals_upto(ost: ObjectStorage, paths: Paths, last: str) -> int:
    """Remove the storage WALs an import superseded (every one up to ``last``)."""
    if not last:
        return 0
    return await delete_storage_wals(ost, paths, last, inclusive=True)
