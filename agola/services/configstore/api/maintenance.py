"""Maintenance mode, export and import of the configstore (spec §3.12), as for the runservice.

The mode is the existence of the coordination key ``maintenance`` (under ``configstore/``): every
instance follows it and switches (in maintenance mode its readdb and datamanager loops are
stopped and only these handlers are served). Export (both modes) checkpoints and streams every
object (the datamanager's export format, datatype by datatype); import (maintenance mode only)
replaces every object with such a stream, under a new epoch that every readdb resyncs from.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from agola.errors import BadRequest, Unavailable
from agola.services.configstore.api.common import role_of
from agola.storage.datamanager import DataManager
from agola.util.http import API_PREFIX, json_response
from agola.util.log import get_logger

log = get_logger(__name__)

STREAM_HEADERS = {"Cache-Control": "no-cache"}
CHUNK = 64 * 1024

MAINTENANCE_PATHS = {f"{API_PREFIX}/maintenance", f"{API_PREFIX}/export", f"{API_PREFIX}/import"}


def _dm(request: web.Request) -> DataManager:
    dm = role_of(request).dm
    if dm is None:
        raise Unavailable("configstore not started")
    return dm


async def enable(request: web.Request) -> web.Response:
    await _dm(request).enable_maintenance()
    return web.Response(status=200)


async def disable(request: web.Request) -> web.Response:
    await _dm(request).disable_maintenance()
    return web.Response(status=200)


async def export(request: web.Request) -> web.StreamResponse:
    chunks = _dm(request).export_data()
    # The first chunk comes after the checkpoint: an error before it is still a clean error
    # response; after it the connection is cut (spec §3.12).
    first = await anext(chunks, b"")
    resp = web.StreamResponse(status=200, headers=STREAM_HEADERS)
    resp.content_type = "application/octet-stream"
    await resp.prepare(request)
    try:
        if first:
            await resp.write(first)
        async for chunk in chunks:
            await resp.write(chunk)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:
        # Headers are gone: the only way to tell the client is a cut (unterminated) stream.
        log.error("configstore export failed after streaming started", error=repr(exc))
        if request.transport is not None:
            request.transport.close()
        raise ConnectionResetError("export aborted") from exc
    await resp.write_eof()
    return resp


class _Counter:
    """Counts the data entries of an import stream as it passes (the header line excluded)."""

    def __init__(self) -> None:
        self.lines = 0
        self.header = False
        self._first = True
        self._tail = b""

    async def count(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            if self._first and chunk:
                self._first = False
                self.header = chunk.lstrip().startswith(b'{"format"')
            self.lines += chunk.count(b"\n")
            self._tail = (self._tail + chunk)[-1:]
            yield chunk

    @property
    def entries(self) -> int:
        n = self.lines + (1 if self._tail not in (b"", b"\n") else 0)
        return max(0, n - (1 if self.header else 0))


async def import_(request: web.Request) -> web.Response:
    role = role_of(request)
    if not role.maintenance:
        raise BadRequest("not in maintenance mode")
    counter = _Counter()
    await _dm(request).import_data(counter.count(request.content.iter_chunked(CHUNK)))
    return json_response({"imported": counter.entries})


def add_routes(app: web.Application) -> None:
    app.router.add_put(f"{API_PREFIX}/maintenance", enable)
    app.router.add_delete(f"{API_PREFIX}/maintenance", disable)
    app.router.add_get(f"{API_PREFIX}/export", export)
    app.router.add_post(f"{API_PREFIX}/import", import_)
