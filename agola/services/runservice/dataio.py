"""Export and import of the runservice datamanager contents (spec §3.12, §4.8).

The stream is DataEntry JSON objects (``{"id", "data_type", "data": base64}``), one per line,
datatype by datatype in the service's datatype order, ids increasing within a datatype.

The datamanager's own ``export_data``/``import_data`` (snapshot level, new epoch; a header line
first) are used when present; otherwise export reads every object after a forced checkpoint and import
rewrites the contents through WALs (puts of the imported objects, deletes of the others), which
is safe in maintenance mode since nothing else writes then.
"""

from __future__ import annotations

from typing import Any, AsyncIterable, AsyncIterator

from agola.errors import BadRequest
from agola.storage.datamanager import Action, DataEntry, DataManager
from agola.storage.datamanager.types import CorruptData

IMPORT_WAL_ACTIONS = 500
MAX_LINE = 64 * 1024 * 1024


async def export_entries(dm: DataManager) -> AsyncIterator[bytes]:
    native = getattr(dm, "export_data", None)
    if native is not None:
        async for chunk in native():
            yield chunk
        return
    await dm.force_checkpoint()
    for datatype in dm.datatypes:
        async for entry in dm.iter_objects(datatype):
            yield entry.to_json() + b"\n"


async def _lines(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    buf = b""
    async for chunk in chunks:
        buf += chunk
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            line, buf = buf[:nl], buf[nl + 1 :]
            if line.strip():
                yield line
        if len(buf) > MAX_LINE:
            raise BadRequest("import: entry too large")
    if buf.strip():
        yield buf


async def iter_import(chunks: AsyncIterable[bytes]) -> AsyncIterator[DataEntry]:
    """Parse and check an export stream (grouped by datatype, increasing ids)."""
    seen_types: set[str] = set()
    current_type = ""
    last_id = ""
    n = 0
    async for line in _lines(chunks):
        n += 1
        try:
            entry = DataEntry.from_line(line, f"import entry {n}")
        except CorruptData as exc:
            raise BadRequest(f"import: entry {n} is not a data entry: {exc}") from None
        if entry.data_type != current_type:
            if entry.data_type in seen_types:
                raise BadRequest(f"import: datatype {entry.data_type!r} appears again after another datatype")
            seen_types.add(entry.data_type)
            current_type, last_id = entry.data_type, ""
        if last_id and entry.id <= last_id:
            raise BadRequest(f"import: ids of {current_type!r} not increasing at {entry.id!r}")
        last_id = entry.id
        yield entry


async def import_entries(dm: DataManager, chunks: AsyncIterable[bytes]) -> int:
    native: Any = getattr(dm, "import_data", None)
    if native is not None:
        return int(await native(chunks))
    imported: dict[str, set[str]] = {dt: set() for dt in dm.datatypes}
    batch: list[Action] = []
    count = 0
    async for entry in iter_import(chunks):
        if entry.data_type not in imported:
            raise BadRequest(f"import: unknown datatype {entry.data_type!r}")
        imported[entry.data_type].add(entry.id)
        batch.append(Action.put(entry.data_type, entry.id, entry.data))
        count += 1
        if len(batch) >= IMPORT_WAL_ACTIONS:
            await dm.write_wal(batch)
            batch = []
    for datatype, ids in imported.items():
        async for existing in dm.iter_objects(datatype):
            if existing.id not in ids:
                batch.append(Action.delete(datatype, existing.id))
                if len(batch) >= IMPORT_WAL_ACTIONS:
                    await dm.write_wal(batch)
                    batch = []
    if batch:
        await dm.write_wal(batch)
    return count
