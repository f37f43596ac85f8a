"""``InitEtcd`` (spec §4.6): rebuild the coordination side of the datamanager from storage.

Runs when ``walsdata`` is missing (fresh or wiped coordination) or after an import. It deletes
every datamanager key but the locks, re-inserts the storage WALs the latest snapshot does not
include (checking that each one names its predecessor), then commits one empty WAL under a new
epoch, strictly greater than any sequence in storage, so every readdb sees the reset.
"""

from __future__ import annotations

import uuid

from agola.errors import Conflict
from agola.storage.coord.base import Compare, Coordination, Put
from agola.storage.datamanager.checkpoint import Checkpointer, fresh_epoch
from agola.storage.datamanager.snapshot import latest_status
from agola.storage.datamanager.storagewals import iter_storage_wals
from agola.storage.datamanager.types import (
    CHANGEGROUPS_MINREV_KEY,
    CHANGEGROUPS_PREFIX,
    CHECKPOINTSEQ_KEY,
    DM,
    LAST_STORAGE_WAL_KEY,
    LOCKS_PREFIX,
    WALS_PREFIX,
    WALSDATA_KEY,
    WALSEQ_KEY,
    CorruptData,
    DataManagerOptions,
    Paths,
    Seq,
    WalData,
    WalHeader,
    WalStatus,
    lock_key,
    wal_key,
    walsdata_json,
)
from agola.storage.objectstorage.base import ObjectStorage
from agola.util.log import get_logger

log = get_logger(__name__)

INIT_LOCK = "initetcd"
INIT_LOCK_TIMEOUT = 60.0


async def ensure_minrev(coord: Coordination) -> None:
    await coord.txn([Compare.create(CHANGEGROUPS_MINREV_KEY, "==", 0)], [Put(CHANGEGROUPS_MINREV_KEY, b"")])


async def wipe_coordination(coord: Coordination) -> None:
    """Delete every datamanager key except the locks."""
    await coord.delete(WALS_PREFIX, prefix=True)
    await coord.delete(CHANGEGROUPS_PREFIX, prefix=True)
    for kv in (await coord.range(DM)).kvs:
        if not kv.key.startswith(LOCKS_PREFIX):
            await coord.delete(kv.key)


async def init_etcd(
    coord: Coordination,
    ost: ObjectStorage,
    paths: Paths,
    checkpointer: Checkpointer,
    options: DataManagerOptions,
    *,
    force: bool = False,
) -> bool:
    """Initialise coordination if needed (always with ``force``); True if it did."""
    mutex = coord.mutex(lock_key(INIT_LOCK), ttl=options.lock_ttl)
    await mutex.lock(timeout=INIT_LOCK_TIMEOUT)
    try:
        if not force and await coord.get(WALSDATA_KEY) is not None:
            await ensure_minrev(coord)
            return False
        await _rebuild(coord, ost, paths)
    finally:
        await mutex.unlock()
    # The checkpoint lock keeps this from racing a running checkpoint of another instance.
    cp_mutex = coord.mutex(lock_key("checkpointlock"), ttl=options.lock_ttl)
    await cp_mutex.lock(timeout=INIT_LOCK_TIMEOUT)
    try:
        await checkpointer.checkpoint(force=True)
    finally:
        await cp_mutex.unlock()
    return True


async def _rebuild(coord: Coordination, ost: ObjectStorage, paths: Paths) -> None:
    await wipe_coordination(coord)
    await ensure_minrev(coord)
    status = await latest_status(ost, paths)
    covered = status.wal_sequence if status else ""
    prev = covered
    reinserted = 0
    async for stored in iter_storage_wals(ost, paths, start_after=covered):
        if status is None:
            raise CorruptData(paths.wal_status_dir, "storage WALs exist but no data status")
        if prev and stored.previous_wal_sequence != prev:
            raise CorruptData(
                paths.wal_status_dir,
                f"wal {stored.wal_sequence}: previous wal sequence {stored.previous_wal_sequence!r}, expected {prev!r}",
            )
        # Coordination names where the actions are (a segment, or the WAL's own data file).
        await coord.put(wal_key(stored.wal_sequence), stored.stored(stored.segment).to_json())
        prev = stored.wal_sequence
        reinserted += 1
    epoch = await fresh_epoch(ost, paths)
    seq = str(Seq(epoch, 1))
    file_id = uuid.uuid4().hex
    await ost.write(paths.wal_data(file_id), b"", persist=True)
    await ost.write(paths.wal_header(seq), WalHeader(file_id, prev).to_json(), persist=True)
    wal = WalData(file_id, WalStatus.COMMITTED_STORAGE, seq, prev)
    res = await coord.txn(
        [Compare.create(WALSDATA_KEY, "==", 0)],
        [
            Put(WALSEQ_KEY, Seq(epoch, 1).to_json()),
            Put(CHECKPOINTSEQ_KEY, Seq(epoch, 0).to_json()),
            Put(wal_key(seq), wal.to_json()),
            Put(LAST_STORAGE_WAL_KEY, seq.encode()),
            Put(WALSDATA_KEY, walsdata_json(seq)),
        ],
    )
    if not res.succeeded:
        raise Conflict("datamanager walsdata created concurrently during init")
    log.info("datamanager coordination initialised", base=paths.base, wal_sequence=seq, reinserted=reinserted)
