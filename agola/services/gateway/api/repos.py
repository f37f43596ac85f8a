"""``/repos/{rest}``: reverse proxy to the gitserver (git smart HTTP and raw files), spec §6.8.

Bodies stream both ways untouched (no decompression: git gzips large requests and the gitserver
inflates them). Pushes (``git-receive-pack``) need the repository's owner: a repository path is
``<userID>/<repoUUID>.git`` and only that user (or the admin) may write it. Fetches stay open, as
in the reference, because executors clone direct runs without credentials; the repository uuid in
the path is random.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web

from agola.roleclients.gitserver import GitserverClient
from agola.services.gateway.api.common import identity, services
from agola.services.gateway.openapi import Query, api_op
from agola.services.gateway.permissions import deny

GIT_SESSION_KEY = web.AppKey("gateway_git_session", aiohttp.ClientSession)

# Hop-by-hop and recomputed headers are not forwarded.
_SKIP = {"host", "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
         "proxy-authorization", "proxy-authenticate", "authorization", "content-length"}


def _is_push(request: web.Request, rest: str) -> bool:
    return rest.endswith("/git-receive-pack") or request.query.get("service") == "git-receive-pack"


async def _check_push(request: web.Request, rest: str) -> None:
    ident = await identity(request)
    owner = rest.split("/", 1)[0]
    if ident.admin or (ident.user is not None and ident.user.id == owner):
        return
    raise deny(ident, "push to this repository")


@api_op("Git smart HTTP, relayed to the gitserver", body_media="application/octet-stream", query=(Query("service"),),
        response_media="application/octet-stream", auth="optional")
async def proxy(request: web.Request) -> web.StreamResponse:
    rest = request.match_info["rest"]
    if _is_push(request, rest):
        await _check_push(request, rest)
    svc = services(request)
    # The caller's own credentials stay here; the gitserver gets the internal token.
    gitserver = GitserverClient(svc.gitserver_url, token=svc.gitserver_token, session=request.app[GIT_SESSION_KEY])
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _SKIP}
    data = request.content if request.method == "POST" else None
    upstream = await gitserver.relay(request.method, rest, params=request.query, headers=headers, data=data)
    async with upstream:
        resp = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for key, value in upstream.headers.items():
            if key.lower() not in _SKIP:
                resp.headers[key] = value
        await resp.prepare(request)
        async for chunk in upstream.content.iter_any():
            await resp.write(chunk)
        await resp.write_eof()
    return resp


def add_routes(app: web.Application) -> None:
    app.router.add_route("GET", "/repos/{rest:.+}", proxy)
    app.router.add_route("POST", "/repos/{rest:.+}", proxy)
