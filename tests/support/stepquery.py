"""Every step query a log or archive request may carry, accepted or rejected: one table for the
parser's own test and for the tests of each server that takes it (executor, runservice, gateway)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

import aiohttp

from agola.types.stepquery import StepQuery

Query = Mapping[str, str]

# (query, the parsed value or a fragment of the 400 message)
LOG_QUERIES: list[tuple[Query, StepQuery | str]] = [
    ({"setup": ""}, StepQuery(setup=True)),
    ({"setup": "1"}, StepQuery(setup=True)),
    ({"step": "0"}, StepQuery(step=0)),
    ({"step": "12", "follow": ""}, StepQuery(step=12, follow=True)),
    ({"setup": "", "follow": "true"}, StepQuery(setup=True, follow=True)),
    ({"step": "3", "follow": "false"}, StepQuery(step=3)),
    ({"setup": "false", "step": "1"}, StepQuery(step=1)),
    ({}, "exactly one of setup or step"),
    ({"setup": "", "step": "0"}, "exactly one of setup or step"),
    ({"follow": ""}, "exactly one of setup or step"),
    ({"step": "x"}, "is not an integer"),
    ({"step": ""}, "is not an integer"),
    ({"step": "1.5"}, "is not an integer"),
    ({"step": "-1"}, "step must be >= 0"),
    ({"setup": "maybe"}, "is not a boolean"),
    ({"step": "0", "follow": "later"}, "is not a boolean"),
]

ARCHIVE_QUERIES: list[tuple[Query, int | str]] = [
    ({"step": "2"}, 2),
    ({"step": "0", "setup": "false"}, 0),
    ({}, "step is required"),
    ({"step": "x"}, "is not an integer"),
    ({"step": "-3"}, "step must be >= 0"),
    ({"setup": ""}, "not to the setup"),
]


async def check_server(
    get: Callable[[Query], Awaitable[aiohttp.ClientResponse]], cases: Sequence[tuple[Query, object]]
) -> None:
    """A server answers 400 with the parser's message to each rejected query, and anything but 400
    (e.g. 404 for a task it does not have) to each accepted one."""
    for query, expected in cases:
        resp = await get(query)
        async with resp:
            body = await resp.read()
            if isinstance(expected, str):
                assert resp.status == 400 and expected.encode() in body, (query, resp.status, body)
            else:
                assert resp.status != 400, (query, body)
