"""Worker threads for blocking object storage I/O, and cleanup that waits for them.

Our own pool (not asyncio's default) so that we hold the ``concurrent.futures.Future`` of each
call: a file or HTTP response is closed only after the thread using it is done, even when the
awaiting task was cancelled. Closing an fd under a running read or write could let the fd number
be reused by another open, and the next syscall land in the wrong file.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

IO_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="agola-ost-io")


class Tracked:
    """Runs blocking calls on one resource (a file, a response) in the pool; remembers the last."""

    def __init__(self) -> None:
        self._last: concurrent.futures.Future[Any] | None = None

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        future = IO_POOL.submit(fn, *args)
        self._last = future
        return future

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.wrap_future(self.submit(fn, *args))

    def then(self, cleanup: Callable[[], None]) -> None:
        """Run ``cleanup`` once the last call has finished: now, or from its worker thread."""
        last = self._last
        if last is None or last.done():
            cleanup()
        else:
            last.add_done_callback(lambda _f: cleanup())
