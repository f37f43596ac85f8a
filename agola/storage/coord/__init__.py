"""Coordination: what etcd gives us (kv with revisions, txn, watch, leases, mutex, sequences)."""

from agola.storage.coord.base import (
    Compacted,
    Compare,
    Coordination,
    Delete,
    Event,
    Get,
    KeyValue,
    Lease,
    Mutex,
    Put,
    RangeResult,
    TxnResult,
    Watcher,
)

__all__ = [
    "Compacted",
    "Compare",
    "Coordination",
    "Delete",
    "Event",
    "Get",
    "KeyValue",
    "Lease",
    "Mutex",
    "Put",
    "RangeResult",
    "TxnResult",
    "Watcher",
]
