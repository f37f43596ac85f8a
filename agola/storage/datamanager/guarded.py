"""Many single-key updates, each guarded by the key's mod revision, in few transactions.

The background jobs move WAL keys through their states one key at a time (mark stored, mark
checkpointed, delete): one transaction per key made a burst of 2000 WALs cost 4000 round trips to
coordination. Here a chunk of keys goes in one transaction; if any key of it moved (init or import
rewrote it), that chunk is redone key by key so the others still get their update.
"""

from __future__ import annotations

from agola.storage.coord.base import Compare, Coordination, Op

# Keys per transaction: etcd refuses more than 128 compares or operations in one (--max-txn-ops).
GUARDED_CHUNK = 64


async def apply_guarded(coord: Coordination, updates: list[tuple[str, int, Op]]) -> int:
    """Apply each ``(key, mod_revision, op)`` if ``key`` still has that mod revision; returns how
    many were applied."""
    applied = 0
    for i in range(0, len(updates), GUARDED_CHUNK):
        chunk = updates[i : i + GUARDED_CHUNK]
        res = await coord.txn([Compare.mod(key, "==", mod) for key, mod, _ in chunk], [op for _, _, op in chunk])
        if res.succeeded:
            applied += len(chunk)
            continue
        for key, mod, op in chunk:
            one = await coord.txn([Compare.mod(key, "==", mod)], [op])
            applied += int(one.succeeded)
    return applied
