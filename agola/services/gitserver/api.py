"""HTTP layer of the gitserver (spec §6.8). Paths may be prefixed by ``/repos`` (gateway layout):

* ``GET  /<repo>.git/info/refs?service=git-upload-pack|git-receive-pack``
* ``POST /<repo>.git/git-upload-pack`` and ``/<repo>.git/git-receive-pack``
* ``GET  /<repo>.git/raw/<commit-or-ref>/<file path>`` -> the file's bytes

A repository is created on the first push (receive-pack); fetching from a missing one is a 404.
"""

from __future__ import annotations

from aiohttp import web

from agola.errors import BadRequest, NotExist
from agola.services.gitserver.cgi import advertise_receive_pack, can_advertise_receive_pack, run_http_backend
from agola.services.gitserver.repos import GIT_SERVICES, GitPath, RepoStore, parse_request_path
from agola.util.http import make_app

STORE_KEY = web.AppKey("gitserver_store", RepoStore)
MAX_PUSH_KEY = web.AppKey("gitserver_max_push_size", int)


def build_app(store: RepoStore, *, api_token: str | None = None,
              max_push_size: int = 1024 * 1024 * 1024) -> web.Application:
    """``api_token``: required on every request but ``/health`` (the gateway's ``/repos`` proxy
    and run creation send it; anonymous pushes are refused). ``max_push_size``: bytes of pack
    one push may send (``gitserver.maxPushSize``)."""
    app = make_app("gitserver", api_token=api_token)
    app[STORE_KEY] = store
    app[MAX_PUSH_KEY] = max_push_size
    # Registered after make_app's /health and /api/v1alpha/version, so those still win.
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def handle(request: web.Request) -> web.StreamResponse:
    store = request.app[STORE_KEY]
    gp = parse_request_path(request.match_info["tail"])
    rest = gp.rest
    if rest == ("info", "refs") and request.method == "GET":
        service = request.query.get("service", "")
        if service not in GIT_SERVICES:
            raise BadRequest("only the smart HTTP protocol is served (service=git-upload-pack|git-receive-pack)")
        push = service == "git-receive-pack"
        await _open(store, gp, push=push)
        if push and can_advertise_receive_pack(request):
            return await advertise_receive_pack(request, store.repo_dir(gp.repo))
        return await run_http_backend(request, store.root, _path_info(gp))
    if len(rest) == 1 and rest[0] in GIT_SERVICES and request.method == "POST":
        push = rest[0] == "git-receive-pack"
        await _open(store, gp, push=push)
        response = await run_http_backend(request, store.root, _path_info(gp),
                                          request.app[MAX_PUSH_KEY] if push else None)
        if push:
            await store.after_push(gp.repo)
        return response
    if len(rest) >= 2 and rest[0] == "raw" and request.method == "GET":
        return await _raw_file(request, store, gp)
    raise NotExist(f"no such endpoint for repository {gp.repo}")


async def _open(store: RepoStore, gp: GitPath, *, push: bool) -> None:
    if push:
        await store.ensure(gp.repo)
    else:
        store.require(gp.repo)


def _path_info(gp: GitPath) -> str:
    return "/" + "/".join((gp.repo, *gp.rest))


async def _raw_file(request: web.Request, store: RepoStore, gp: GitPath) -> web.StreamResponse:
    rev, file_path = gp.rest[1], gp.rest[2:]
    chunks = await store.file_at(gp.repo, rev, file_path)
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream",
                                           "Cache-Control": "no-cache"})
    await response.prepare(request)
    async for chunk in chunks:
        await response.write(chunk)
    await response.write_eof()
    return response
