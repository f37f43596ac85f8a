"""Damage checks of the embedded coordination store's sqlite files (``coord.db`` and its
``-wal``): a damaged file is never rebuilt or dropped, the store refuses to open naming it."""

from __future__ import annotations

import struct
from pathlib import Path

from agola.errors import Internal


class CorruptStore(Internal):
    """``coord.db`` is damaged. It is the only copy of the coordination state (WALs not yet
    checkpointed, run state, sequences): never rebuilt silently, the process stops naming it."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(f"embedded coordination store {str(path)!r} is corrupt ({detail}): "
                         "not starting; restore it from a backup (or move it aside to start empty)")
        self.path = path


_WAL_MAGICS = {0x377F0682: "<", 0x377F0683: ">"}  # sqlite WAL magic -> checksum byte order


def check_wal_header(wal: Path) -> None:
    """sqlite drops a ``-wal`` file whose header is damaged without a word, and with it every
    transaction not yet checkpointed: refuse to open instead. (A torn last frame after a crash is
    sqlite's normal recovery and not reported.)"""
    try:
        with wal.open("rb") as f:
            header = f.read(32)
    except FileNotFoundError:
        return
    if len(header) < 32:
        return  # empty or never written past its start: nothing committed in it
    magic, _version, _page, _seq, _salt1, _salt2, c1, c2 = struct.unpack(">8I", header)
    order = _WAL_MAGICS.get(magic)
    if order is None:
        raise CorruptStore(wal, "not a sqlite WAL file")
    s0 = s1 = 0
    for x0, x1 in struct.iter_unpack(f"{order}2I", header[:24]):
        s0 = (s0 + x0 + s1) & 0xFFFFFFFF
        s1 = (s1 + x1 + s0) & 0xFFFFFFFF
    if (s0, s1) != (c1, c2):
        raise CorruptStore(wal, "WAL header checksum mismatch")
