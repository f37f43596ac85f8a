"""The runservice's log and archive endpoints parse step queries with the one shared parser."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp

from tests.runservice.role.conftest import Instance
from tests.support.services import INTERNAL_AUTH
from tests.support.stepquery import ARCHIVE_QUERIES, LOG_QUERIES, Query, check_server


async def test_step_queries(rs: Instance) -> None:
    async with aiohttp.ClientSession(headers=INTERNAL_AUTH) as http:

        def get(path: str) -> Callable[[Query], Awaitable[aiohttp.ClientResponse]]:
            async def send(query: Query) -> aiohttp.ClientResponse:
                params = {"runid": "no-run", "taskid": "no-task", **query}
                return await http.get(f"{rs.url}/api/v1alpha/{path}", params=params)

            return send

        await check_server(get("logs"), LOG_QUERIES)
        await check_server(get("executor/archives"), ARCHIVE_QUERIES)
