"""``POST /user/createrun``: direct runs."""

from __future__ import annotations

from aiohttp import web

from agola.client import types as wire
from agola.services.gateway.actions import createrun as actions
from agola.services.gateway.api import serialize
from agola.services.gateway.api.common import ctx, json_object
from agola.services.gateway.openapi import api_op
from agola.util.http import API_PREFIX, json_response


@api_op(body=wire.UserCreateRunRequest, response=wire.CreatedRunsResponse, status=201)
async def user_create_run(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    req = actions.UserCreateRunRequest.from_json(await json_object(request))
    runs = await actions.user_create_run(svc, ident, req)
    # The reference answers an empty 201; the created runs are handy for `--follow`.
    return json_response({"runs": [serialize.runs_row(r) for r in runs]}, status=201)


def add_routes(app: web.Application) -> None:
    app.router.add_post(f"{API_PREFIX}/user/createrun", user_create_run)
