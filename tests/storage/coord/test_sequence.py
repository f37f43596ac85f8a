"""The epoch+counter sequence (spec §3.1): string form, parsing, ordering, atomic increments."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from agola.errors import BadRequest
from agola.storage.coord.base import Coordination
from agola.storage.coord.sequence import Sequence, next_sequence, next_sequences, parse


def test_string_form_is_fixed_width_base32() -> None:
    assert str(Sequence(1, 1)) == "0000000000001-0000000000001"
    assert str(Sequence(32, 31)) == "0000000000010-000000000000v"
    s = str(Sequence(2**64 - 1, 0))
    assert len(s) == 27 and s.startswith("f" + "v" * 12)


def test_parse_round_trips_and_rejects_bad_input() -> None:
    for seq in (Sequence(0, 0), Sequence(1_700_000_000, 12345), Sequence(2**64 - 1, 2**64 - 1)):
        assert parse(str(seq)) == seq
    for bad in ("", "0000000000001-000000000001", "0000000000001_0000000000001", "000000000000w-0000000000001",
                "0000000000001-00000000000001", "g000000000000-0000000000000", "000000000000A-0000000000000"):
        with pytest.raises(BadRequest):
            parse(bad)


def test_lexical_order_is_numeric_order() -> None:
    seqs = [Sequence(5, c) for c in (1, 31, 32, 1023, 1024, 10**9)] + [Sequence(6, 0)]
    assert sorted(seqs) == seqs
    assert sorted(str(s) for s in seqs) == [str(s) for s in seqs]


async def test_next_sequence_starts_an_epoch_and_counts(coord: Coordination) -> None:
    before = int(time.time())
    s1 = await next_sequence(coord, "seq")
    s2 = await next_sequence(coord, "seq")
    assert before <= s1.epoch <= int(time.time()) and s1.c == 1
    assert s2 == Sequence(s1.epoch, 2)
    kv = await coord.get("seq")
    assert kv is not None and json.loads(kv.value) == {"Epoch": s1.epoch, "C": 2}


async def test_concurrent_increments_are_distinct(coord: Coordination) -> None:
    n = 12
    seqs = await asyncio.gather(*(next_sequence(coord, "cseq") for _ in range(n)))
    assert sorted(s.c for s in seqs) == list(range(1, n + 1))
    assert len({str(s) for s in seqs}) == n
    assert (await next_sequence(coord, "cseq")).c == n + 1


async def test_several_values_in_one_write(coord: Coordination) -> None:
    first = await next_sequence(coord, "bseq")
    batch = await next_sequences(coord, "bseq", 3)
    assert [s.c for s in batch] == [2, 3, 4] and {s.epoch for s in batch} == {first.epoch}
    assert (await next_sequence(coord, "bseq")).c == 5
