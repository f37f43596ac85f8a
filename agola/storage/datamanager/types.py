"""Data shapes of the datamanager (spec §4.2), their JSON encodings, key and object names.

Everything here is pure: no I/O. The JSON names follow the reference so that archives and object
storage contents stay readable by anyone who knows the Go layout.
"""

from __future__ import annotations

import base64
import enum
import json
from json.encoder import encode_basestring_ascii
from typing import Any

import attrs

from agola.errors import BadRequest, Internal, NotExist
from agola.storage.coord import sequence as _sequence
from agola.storage.coord.sequence import SEQUENCE_LENGTH

# The datamanager's name for a coordination sequence (WAL and checkpoint sequences), re-exported.
Seq = _sequence.Sequence

# The last digit of a sequence string, by value (a group commit numbers consecutive WALs).
_LAST_DIGITS = [str(Seq(0, d))[-1] for d in range(32)]


def seq_strings(epoch: int, first: int, count: int) -> list[str]:
    """``str(Seq(epoch, c))`` for ``count`` counters from ``first``: consecutive counters share all
    but their last digit 31 times in 32, so each head is formatted once (formatting every one was
    ~10% of a write's event loop time)."""
    out: list[str] = []
    head, head_of = "", -1
    for c in range(first, first + count):
        if c >> 5 != head_of:
            head_of = c >> 5
            head = str(Seq(epoch, c))[:-1]
        out.append(head + _LAST_DIGITS[c & 31])
    return out

# --- errors ----------------------------------------------------------------------------------


class CorruptData(Internal):
    """An object of the datamanager (WAL, header, snapshot, index, status) cannot be decoded."""

    code = "corrupt_data"

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"corrupt datamanager object {path!r}: {reason}")
        self.path = path
        self.reason = reason


class NoDataStatus(NotExist):
    """Object storage holds no data status (snapshot) yet: the datamanager was never initialised."""

    code = "not_exist"

    def __init__(self, message: str = "no data status in object storage") -> None:
        super().__init__(message)


class NotInitialized(Internal):
    """Coordination has no ``walsdata``: ``DataManager.init()`` has not run (or etcd was wiped)."""

    def __init__(self, message: str = "datamanager not initialized") -> None:
        super().__init__(message)


# --- sequences (spec §3.1: the coordination package's epoch+counter sequence) -----------------


def seq_from_json(raw: bytes, where: str) -> Seq:
    try:
        return Seq.from_json(raw)
    except BadRequest:
        raise CorruptData(where, "not a sequence") from None


def seq_epoch(seq: str) -> int:
    """The epoch of a sequence string (0 for the empty sequence)."""
    return Seq.parse(seq).epoch if seq else 0


# --- coordination keys (relative to the service prefix, spec §1.5) ----------------------------

DM = "datamanager/"
WALSDATA_KEY = DM + "walsdata"
WALS_PREFIX = DM + "wals/"
WALSEQ_KEY = DM + "walseq"
CHECKPOINTSEQ_KEY = DM + "checkpointseq"
LAST_STORAGE_WAL_KEY = DM + "lastcommittedstoragewalseq"
CHANGEGROUPS_PREFIX = DM + "changegroups/"
CHANGEGROUPS_MINREV_KEY = DM + "changegroupsminrev"
PING_KEY = DM + "ping"
LOCKS_PREFIX = DM + "locks/"
MAINTENANCE_KEY = "maintenance"

# A token older than this many revisions behind the compactor is refused (spec §4.3).
CHANGEGROUP_COMPACT_RANGE = 1000


def wal_key(seq: str) -> str:
    return WALS_PREFIX + seq


def lock_key(name: str) -> str:
    return LOCKS_PREFIX + name


# --- object paths (spec §4.2, relative to the base path) -------------------------------------


@attrs.frozen
class Paths:
    base: str  # "configdata/" or "rundata/" (a trailing "/" is added if missing)

    def __attrs_post_init__(self) -> None:
        if self.base and not self.base.endswith("/"):
            object.__setattr__(self, "base", self.base + "/")

    @property
    def wal_status_dir(self) -> str:
        return f"{self.base}wals/status/"

    def wal_data(self, wal_data_file_id: str) -> str:
        return f"{self.base}wals/data/{wal_data_file_id}"

    def wal_header(self, seq: str) -> str:
        return f"{self.wal_status_dir}{seq}.committed"

    def wal_segment(self, segment: str) -> str:
        """A segment of several WALs (``segment`` is ``<last seq>.<first seq>``)."""
        return f"{self.wal_status_dir}{segment}.segment"

    @property
    def data_dir(self) -> str:
        return f"{self.base}data/"

    def data_status(self, data_seq: str) -> str:
        return f"{self.data_dir}{data_seq}.status"

    def data_file(self, datatype: str, file_id: str) -> str:
        return f"{self.data_dir}{datatype}/{file_id}.data"

    def data_index(self, datatype: str, file_id: str) -> str:
        return f"{self.data_dir}{datatype}/{file_id}.index"


# --- JSON helpers ----------------------------------------------------------------------------


# One decoder for every document; handing it text skips json.loads' encoding detection of bytes.
_DECODER = json.JSONDecoder()


def _loads(raw: bytes, where: str) -> Any:
    try:
        return _DECODER.decode(raw.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptData(where, f"invalid JSON: {exc}") from None


# One compact encoder for every document (json.dumps builds a new one per call with these options).
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def _dumps(doc: Any) -> bytes:
    return _ENCODER.encode(doc).encode()


def _quote(text: str) -> bytes:
    """A JSON string literal, as _dumps writes it (ASCII, escaped)."""
    return encode_basestring_ascii(text).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, where: str) -> bytes:
    if text is None:
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        raise CorruptData(where, "invalid base64 data") from None


# --- actions and WALs ------------------------------------------------------------------------


class ActionType(str, enum.Enum):
    PUT = "put"
    DELETE = "delete"


@attrs.frozen
class Action:
    action_type: ActionType
    data_type: str
    id: str
    data: bytes = b""

    @classmethod
    def put(cls, data_type: str, id: str, data: bytes) -> Action:
        return cls(ActionType.PUT, data_type, id, data)

    @classmethod
    def delete(cls, data_type: str, id: str) -> Action:
        return cls(ActionType.DELETE, data_type, id)

    def to_json(self) -> bytes:
        # What _dumps makes of {"ActionType", "DataType", "ID", "Data"}, formatted directly (every
        # write encodes its actions): the strings go through the encoder's own quoting.
        data = b'"%s"' % base64.b64encode(self.data) if self.data else b"null"
        return b'{"ActionType":"%s","DataType":%s,"ID":%s,"Data":%s}' % (
            self.action_type.value.encode(), _quote(self.data_type), _quote(self.id), data)

    @classmethod
    def from_doc(cls, doc: Any, where: str) -> Action:
        try:
            return cls(
                ActionType(doc["ActionType"]),
                str(doc["DataType"]),
                str(doc["ID"]),
                _unb64(doc.get("Data"), where),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise CorruptData(where, "not an action") from None


def encode_wal_data(actions: list[Action]) -> bytes:
    """A WAL data file: one action JSON per line (a streaming JSON decoder reads it too)."""
    return b"".join(a.to_json() + b"\n" for a in actions)


def decode_wal_data(raw: bytes, where: str) -> list[Action]:
    return [Action.from_doc(doc, where) for doc in iter_json_docs(raw, where)]


def iter_json_docs(raw: bytes, where: str) -> list[Any]:
    """Decode JSON documents written back to back (with or without whitespace between them)."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise CorruptData(where, "not UTF-8") from None
    decoder = _DECODER
    docs: list[Any] = []
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos] in " \t\r\n":
            pos += 1
        if pos >= end:
            return docs
        try:
            doc, pos = decoder.raw_decode(text, pos)
        except ValueError as exc:
            raise CorruptData(where, f"invalid JSON: {exc}") from None
        docs.append(doc)


class WalStatus(str, enum.Enum):
    COMMITTED = "committed"
    COMMITTED_STORAGE = "committed_storage"
    CHECKPOINTED = "checkpointed"


@attrs.frozen
class WalData:
    """The coordination value of ``datamanager/wals/<seq>``."""

    wal_data_file_id: str
    wal_status: WalStatus
    wal_sequence: str
    previous_wal_sequence: str
    # Small WALs travel inside the coordination value until the sync job writes their data file
    # (an extension of the reference shape: one transaction acknowledges the write).
    inline_data: bytes | None = None
    # The storage segment (``wals/status/<segment>.segment``) holding this WAL's actions, for a
    # small WAL once synced ("" = inline, or in ``wals/data/<file id>``). An extension too.
    segment: str = ""

    def to_json(self) -> bytes:
        doc = {
            "WalDataFileID": self.wal_data_file_id,
            "WalStatus": self.wal_status.value,
            "WalSequence": self.wal_sequence,
            "PreviousWalSequence": self.previous_wal_sequence,
        }
        if self.inline_data is not None:
            doc["Data"] = _b64(self.inline_data)
        if self.segment:
            doc["Segment"] = self.segment
        return _dumps(doc)

    @classmethod
    def from_json(cls, raw: bytes, where: str) -> WalData:
        return cls.from_doc(_loads(raw, where), where)

    @classmethod
    def from_doc(cls, doc: Any, where: str) -> WalData:
        try:
            return cls(
                str(doc["WalDataFileID"]),
                WalStatus(doc["WalStatus"]),
                str(doc["WalSequence"]),
                str(doc.get("PreviousWalSequence") or ""),
                _unb64(doc["Data"], where) if doc.get("Data") is not None else None,
                str(doc.get("Segment") or ""),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise CorruptData(where, "not a WAL entry") from None

    def with_status(self, status: WalStatus) -> WalData:
        return attrs.evolve(self, wal_status=status)

    def stored(self, segment: str = "", status: WalStatus = WalStatus.COMMITTED_STORAGE) -> WalData:
        """The value once the WAL is in storage (inline data dropped; a small WAL names the segment
        that holds its actions)."""
        # The constructor, not attrs.evolve: the checkpoint calls this for every WAL.
        return WalData(self.wal_data_file_id, status, self.wal_sequence,
                       self.previous_wal_sequence, None, segment if self.inline_data is not None else self.segment)


@attrs.frozen
class WalHeader:
    """The object ``<base>wals/status/<seq>.committed``: the WAL is durable in storage."""

    wal_data_file_id: str
    previous_wal_sequence: str

    def to_json(self) -> bytes:
        return _dumps(
            {"WalDataFileID": self.wal_data_file_id, "PreviousWalSequence": self.previous_wal_sequence}
        )

    @classmethod
    def from_json(cls, raw: bytes, where: str) -> WalHeader:
        doc = _loads(raw, where)
        try:
            return cls(str(doc["WalDataFileID"]), str(doc.get("PreviousWalSequence") or ""))
        except (KeyError, TypeError, AttributeError):
            raise CorruptData(where, "not a WAL header") from None


def committed_wal_json(file_id: str, seq: str, previous: str, inline: bytes | None) -> bytes:
    """``WalData(file_id, COMMITTED, seq, previous, inline).to_json()``, formatted directly for the
    writer's own file ids (hex) and sequences (base 32), which JSON never escapes: a quarter of the
    time, for every write."""
    data = b',"Data":"%s"' % base64.b64encode(inline) if inline is not None else b""
    return b'{"WalDataFileID":"%s","WalStatus":"committed","WalSequence":"%s","PreviousWalSequence":"%s"%s}' % (
        file_id.encode(), seq.encode(), previous.encode(), data)


_CHECKPOINTED_MARK = b'"WalStatus":"checkpointed"'


def is_checkpointed(raw: bytes) -> bool:
    """Whether a WAL's coordination value (as ``WalData.to_json`` writes it) says checkpointed,
    without decoding it: the checkpoint and the WAL cleaner skip thousands of those after a burst.
    (No other field can hold that text: the actions are base64, ids and sequences have no quotes.)"""
    return _CHECKPOINTED_MARK in raw


def walsdata_json(last_committed: str) -> bytes:
    return _dumps({"LastCommittedWalSequence": last_committed})


def parse_walsdata(raw: bytes, where: str = WALSDATA_KEY) -> str:
    doc = _loads(raw, where)
    try:
        return str(doc["LastCommittedWalSequence"] or "")
    except (KeyError, TypeError):
        raise CorruptData(where, "not a walsdata value") from None


# --- snapshots -------------------------------------------------------------------------------


@attrs.frozen
class DataEntry:
    id: str
    data_type: str
    data: bytes

    def to_json(self) -> bytes:
        # What _dumps makes of {"id", "data_type", "data"}, formatted directly (a checkpoint
        # encodes every entry of each data file it rewrites).
        return b'{"id":%s,"data_type":%s,"data":"%s"}' % (
            _quote(self.id), _quote(self.data_type), base64.b64encode(self.data))

    @classmethod
    def from_doc(cls, doc: Any, where: str) -> DataEntry:
        try:
            return cls(str(doc["id"]), str(doc["data_type"]), _unb64(doc.get("data"), where))
        except (KeyError, TypeError, AttributeError):
            raise CorruptData(where, "not a data entry") from None

    @classmethod
    def from_line(cls, line: bytes, where: str) -> DataEntry:
        return cls.from_doc(_loads(line, where), where)


@attrs.frozen
class DataFileRef:
    id: str
    last_entry_id: str


@attrs.frozen
class DataStatus:
    """``<base>data/<dataSeq>.status``: one complete snapshot (files per datatype, by id range)."""

    data_sequence: str
    wal_sequence: str
    files: dict[str, list[DataFileRef]]

    def to_json(self) -> bytes:
        return _dumps(
            {
                "data_sequence": self.data_sequence,
                "wal_sequence": self.wal_sequence,
                "files": {
                    dt: [{"id": f.id, "last_entry_id": f.last_entry_id} for f in refs]
                    for dt, refs in self.files.items()
                },
            }
        )

    @classmethod
    def from_json(cls, raw: bytes, where: str) -> DataStatus:
        doc = _loads(raw, where)
        try:
            files = {
                str(dt): [DataFileRef(str(f["id"]), str(f["last_entry_id"])) for f in refs]
                for dt, refs in (doc.get("files") or {}).items()
            }
            return cls(str(doc["data_sequence"]), str(doc.get("wal_sequence") or ""), files)
        except (KeyError, TypeError, AttributeError):
            raise CorruptData(where, "not a data status") from None

    def file_ids(self) -> set[str]:
        return {f.id for refs in self.files.values() for f in refs}


def encode_index(index: dict[str, int]) -> bytes:
    return _dumps({"index": index})


def decode_index(raw: bytes, where: str) -> dict[str, int]:
    doc = _loads(raw, where)
    try:
        return {str(k): int(v) for k, v in doc["index"].items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        raise CorruptData(where, "not a data index") from None


def data_seq_of_file(file_id: str) -> str:
    """``fileID = <dataSeq>-<uuid>``: the data sequence part."""
    return file_id[:SEQUENCE_LENGTH]


# --- change groups ---------------------------------------------------------------------------


@attrs.frozen
class ChangeGroupsUpdateToken:
    """What a writer read: the store revision and each change group's last mod revision (0 = none)."""

    cur_revision: int
    change_groups_revisions: dict[str, int] = attrs.field(factory=dict)

    def encode(self) -> str:
        doc = {"cur_revision": self.cur_revision, "change_groups_revisions": self.change_groups_revisions}
        return base64.urlsafe_b64encode(_dumps(doc)).decode("ascii")

    @classmethod
    def decode(cls, token: str) -> ChangeGroupsUpdateToken:
        if not token:
            return cls(0, {})
        try:
            doc = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
            return cls(
                int(doc["cur_revision"]),
                {str(k): int(v) for k, v in (doc.get("change_groups_revisions") or {}).items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            raise BadRequest("invalid change groups update token") from None


def validate_change_group(name: str) -> None:
    if not name or "/" in name or len(name) > 256:
        raise BadRequest(f"invalid change group name {name!r}")


# --- options ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class DataManagerOptions:
    """Tuning knobs (spec §4.1 defaults). Tests shrink the intervals and thresholds."""

    checkpoint_interval: float = 10.0
    min_checkpoint_wals: int = 100
    etcd_wals_keep: int = 100
    checkpoint_clean_interval: float = 300.0
    keep_data_statuses: int = 3
    storage_wal_clean_interval: float = 300.0
    sync_interval: float = 5.0
    etcd_wal_clean_interval: float = 2.0
    compact_change_groups_interval: float = 1.0
    change_group_compact_range: int = CHANGEGROUP_COMPACT_RANGE
    ping_interval: float = 1.0
    max_data_file_size: int = 10 * 1024 * 1024
    lock_ttl: float = 10.0
    # WALs up to this size (encoded actions) are committed inline in the coordination value and
    # written to object storage by the sync job; larger ones are written to storage first.
    inline_wal_max_bytes: int = 64 * 1024
    # Background loops back off exponentially up to this after errors.
    max_backoff: float = 10.0
    # Bytes of snapshot files kept in memory to serve ``read_object``.
    read_cache_bytes: int = 32 * 1024 * 1024


