"""Windows into a step log for the browser, so a 100 MB log never reaches the tab whole.

The runservice streams a log from its first byte; these helpers read that stream with bounded
memory and keep only what the page asked for: the tail (the last ``n`` bytes, starting at a line),
a byte range (scrolling back), or everything after an offset (following a running step). Each
window says where it starts, in bytes and in lines, so the page numbers lines correctly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import attrs

__all__ = ["MAX_WINDOW", "LogWindow", "after", "byte_range", "tail"]

# The most a single window answer holds (the browser asks for less: 256 KiB).
MAX_WINDOW = 4 * 1024 * 1024


@attrs.frozen
class LogWindow:
    data: bytes
    start: int  # byte offset of data[0] in the log
    start_line: int  # number of newlines before ``start``: data's first line is start_line + 1
    end: int  # byte offset just after data (the log's size when reading a tail)


async def tail(stream: AsyncIterator[bytes], size: int) -> LogWindow:
    """The last ``size`` bytes (at most ``MAX_WINDOW``), cut to start at a line."""
    size = max(1, min(size, MAX_WINDOW))
    buf = bytearray()
    total = 0
    dropped_lines = 0
    async for chunk in stream:
        buf += chunk
        total += len(chunk)
        if len(buf) > size:
            cut = len(buf) - size
            dropped_lines += buf.count(b"\n", 0, cut)
            del buf[:cut]
    start, dropped_lines = _to_line_start(buf, total - len(buf), dropped_lines)
    return LogWindow(bytes(buf), start, dropped_lines, total)


async def byte_range(stream: AsyncIterator[bytes], start: int, end: int) -> LogWindow:
    """Bytes ``[start, end)`` (at most ``MAX_WINDOW``); a start inside a line moves to the next
    line, as the caller already shows the lines from ``end`` on."""
    start = max(0, start)
    end = min(max(start, end), start + MAX_WINDOW)
    buf = bytearray()
    pos = 0
    lines = 0
    async for chunk in stream:
        chunk_end = pos + len(chunk)
        if chunk_end > start:
            lo = max(start - pos, 0)
            lines += chunk.count(b"\n", 0, lo)
            buf += chunk[lo : max(lo, end - pos)]
        else:
            lines += chunk.count(b"\n")
        pos = chunk_end
        if pos >= end:
            break
    start, lines = _to_line_start(buf, start, lines)
    return LogWindow(bytes(buf), start, lines, start + len(buf))


def _to_line_start(buf: bytearray, start: int, lines: int) -> tuple[int, int]:
    """Drop the partial first line of a window cut at ``start`` (in place), unless the window is
    one huge line; the new start and line count."""
    if start > 0:
        newline = buf.find(b"\n")
        if 0 <= newline < len(buf) - 1:
            del buf[: newline + 1]
            return start + newline + 1, lines + 1
    return start, lines


async def after(stream: AsyncIterator[bytes], offset: int) -> AsyncIterator[bytes]:
    """The stream without its first ``offset`` bytes (the page already has them)."""
    skip = max(0, offset)
    async for chunk in stream:
        if skip >= len(chunk):
            skip -= len(chunk)
            continue
        yield chunk[skip:]
        skip = 0
