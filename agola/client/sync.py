"""A blocking façade over :class:`GatewayClient` for scripts that are not asyncio programs.

    from agola.client.sync import SyncGatewayClient

    with SyncGatewayClient("http://localhost:8000", token="...") as gw:
        print(gw.current_user().username)
        for chunk in gw.stream_log(run_id, task_id, step=1, follow=True):
            sys.stdout.buffer.write(chunk)

Every coroutine method of ``GatewayClient`` is available with the same arguments; async
iterators (``stream_log``, ``stream``, ``run_events``) become plain iterators. One private event
loop per instance; not thread-safe.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterator
from typing import Any

from agola.client.gateway import GatewayClient


class SyncGatewayClient:
    def __init__(self, url: str, token: str = "", *, timeout: float = 60.0) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = GatewayClient(url, token, timeout=timeout)

    def close(self) -> None:
        if not self._loop.is_closed():
            self._loop.run_until_complete(self._client.close())
            self._loop.close()

    def __enter__(self) -> SyncGatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _iterate(self, agen: AsyncIterator[Any]) -> Iterator[Any]:
        try:
            while True:
                try:
                    yield self._loop.run_until_complete(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(agen, "aclose", None)
            if aclose is not None and not self._loop.is_closed():
                self._loop.run_until_complete(aclose())

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            if inspect.iscoroutine(result):
                return self._loop.run_until_complete(result)
            if inspect.isasyncgen(result) or hasattr(result, "__anext__"):
                return self._iterate(result)
            return result

        return call
