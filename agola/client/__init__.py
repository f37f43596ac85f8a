"""The public Python client of the agola gateway API (``/api/v1alpha``, spec §6.2).

Self-contained: it depends on aiohttp, yarl and attrs only and imports nothing from the rest of
``agola``, so scripts and other tools may use (or vendor) it alone. The ``agola`` CLI is built on
it.

    import asyncio
    from agola.client import GatewayClient, NotExist

    async def main() -> None:
        async with GatewayClient("http://localhost:8000", token="...") as gw:
            for run in await gw.list_runs("/user/" + (await gw.current_user()).id, limit=5):
                print(run.counter, run.phase, run.result)

    asyncio.run(main())
"""

from __future__ import annotations

from agola.client.errors import (
    AlreadyExists,
    BadRequest,
    ClientError,
    Conflict,
    Forbidden,
    Internal,
    NotExist,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
    error_from_response,
)
from agola.client.gateway import API_PREFIX, GatewayClient, ParentKind, ref
from agola.client import types as _types
from agola.client.types import *  # noqa: F401,F403 - the request/response types are public

__all__ = [
    "API_PREFIX",
    "AlreadyExists",
    "BadRequest",
    "ClientError",
    "Conflict",
    "Forbidden",
    "GatewayClient",
    "Internal",
    "NotExist",
    "ParentKind",
    "PayloadTooLarge",
    "Unauthorized",
    "Unavailable",
    "error_from_response",
    "ref",
] + sorted(n for n, v in vars(_types).items() if isinstance(v, type) and v.__module__ == _types.__name__)
