"""The runservice store's decode cache: a value is decoded once per mod revision, a new revision
is decoded again, and keys missing from a full listing are forgotten."""

from __future__ import annotations

from agola.services.runservice.store import _Decoded
from agola.storage.coord.base import KeyValue


def _kv(key: str, value: bytes, rev: int) -> KeyValue:
    return KeyValue(key=key, value=value, create_revision=1, mod_revision=rev, version=1)


def test_decoded_once_per_revision_and_forgotten_when_unlisted() -> None:
    calls: list[bytes] = []

    def decode(raw: bytes) -> str:
        calls.append(raw)
        return raw.decode()

    cache: _Decoded[str] = _Decoded(decode)
    assert cache.all([_kv("a", b"a1", 5), _kv("b", b"b1", 6)]) == ["a1", "b1"]
    assert cache.all([_kv("a", b"a1", 5), _kv("b", b"b1", 6)]) == ["a1", "b1"]
    assert calls == [b"a1", b"b1"]
    # A new revision is a new value, even through a single read.
    assert cache.one(_kv("a", b"a2", 9)) == "a2"
    assert cache.all([_kv("a", b"a2", 9)]) == ["a2"]
    assert calls == [b"a1", b"b1", b"a2"]
    # "b" was not listed: a later "b" at the old revision number is decoded again, not reused.
    assert cache.one(_kv("b", b"other", 6)) == "other"
