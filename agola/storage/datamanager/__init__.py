"""The datamanager (spec §4): a replicated store of objects grouped by datatype.

Writes go to a write-ahead log (data in object storage, headers in coordination) with optimistic
concurrency on *change groups*; background jobs fold WALs into sorted snapshot files; reads merge
the latest snapshot with recent WALs; each service's readdb follows it through ``DataManager.feed``.
See ``docs/storage-datamanager.md``.
"""

from agola.storage.datamanager.feed import FeedBatch, token_from
from agola.storage.datamanager.maintenance import (
    MaintenanceWatcher,
    disable_maintenance,
    enable_maintenance,
    is_maintenance_enabled,
)
from agola.storage.datamanager.manager import DataManager
from agola.storage.datamanager.types import (
    Action,
    ActionType,
    ChangeGroupsUpdateToken,
    CorruptData,
    DataEntry,
    DataManagerOptions,
    DataStatus,
    NoDataStatus,
    NotInitialized,
)

__all__ = [
    "Action",
    "ActionType",
    "ChangeGroupsUpdateToken",
    "CorruptData",
    "DataEntry",
    "DataManager",
    "DataManagerOptions",
    "DataStatus",
    "FeedBatch",
    "MaintenanceWatcher",
    "NoDataStatus",
    "NotInitialized",
    "disable_maintenance",
    "enable_maintenance",
    "is_maintenance_enabled",
    "token_from",
]
