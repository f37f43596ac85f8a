"""Coordination: what etcd gives us (kv with revisions, txn, watch, leases, mutex, sequences)."""

from agola.storage.coord.base import (
    Closed,
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
    "Closed",
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
