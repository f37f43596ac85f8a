"""What every runservice handler shares: the service context and small request helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from aiohttp import web

from agola.errors import Unavailable
from agola.services.runservice.core import RunserviceCore
from agola.services.runservice.readdb import RunReadDB
from agola.services.runservice.store import RunStore
from agola.storage.datamanager import DataManager
from agola.types.maintenance import MaintenanceStatus


class RunserviceService(Protocol):
    """The runservice as its handlers see it (``RunserviceRole`` in a server)."""

    @property
    def maintenance(self) -> bool: ...

    @property
    def dm(self) -> DataManager | None: ...

    @property
    def core(self) -> RunserviceCore | None: ...

    @property
    def readdb(self) -> RunReadDB | None: ...

    def store_required(self) -> RunStore: ...

    async def maintenance_status(self) -> MaintenanceStatus: ...


ROLE: web.AppKey[RunserviceService] = web.AppKey("runservice_role")

STREAM_HEADERS = {"Cache-Control": "no-cache", "Connection": "keep-alive"}


def role_of(request: web.Request) -> RunserviceService:
    return request.app[ROLE]


def core_of(request: web.Request) -> RunserviceCore:
    role = role_of(request)
    if role.core is None:
        raise Unavailable("runservice not started")
    return role.core


def readdb_of(request: web.Request) -> RunReadDB:
    role = role_of(request)
    if role.readdb is None:
        raise Unavailable("runservice readdb not running")
    return role.readdb


async def stream_body(
    request: web.Request,
    chunks: AsyncIterator[bytes],
    *,
    content_type: str = "application/octet-stream",
    size: int | None = None,
) -> web.StreamResponse:
    """Send ``chunks`` as the response body with bounded memory (one chunk at a time)."""
    resp = web.StreamResponse(status=200, headers=STREAM_HEADERS)
    resp.content_type = content_type
    if size is not None:
        resp.content_length = size
    await resp.prepare(request)
    try:
        async for chunk in chunks:
            # write() hands each chunk to the transport at once (flushing it), waiting only
            # when the peer is slow: memory stays bounded and followers see lines promptly.
            await resp.write(chunk)
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
    await resp.write_eof()
    return resp


async def request_chunks(request: web.Request, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(size):
        yield chunk
