"""``git http-backend`` run as a CGI from aiohttp: request body streamed in, response streamed out.

The backend handles the smart protocol (v0/v1 and v2 via ``GIT_PROTOCOL``) and inflates gzip request
bodies itself when told through ``HTTP_CONTENT_ENCODING``. Memory stays bounded whatever the size of
the push or clone.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from aiohttp import web

from agola.errors import Internal
from agola.services.gitserver.repos import git_env
from agola.util.log import get_logger

log = get_logger(__name__)

CHUNK = 64 * 1024
MAX_HEADER_BYTES = 64 * 1024
MAX_STDERR_BYTES = 8 * 1024
# Request body bytes allowed beyond max_push_size (ref update commands, protocol framing).
BODY_SLACK = 1024 * 1024
# Never forwarded from the CGI to the client: aiohttp manages framing itself.
_HOP_BY_HOP = {"connection", "transfer-encoding", "keep-alive", "content-length", "status"}


def cgi_env(request: web.Request, project_root: Path, path_info: str,
            max_push_size: int | None = None) -> dict[str, str]:
    env = git_env()
    if max_push_size is not None:
        # git receive-pack refuses a pack stream over this size itself ("pack exceeds maximum
        # allowed size"), which the pushing git client prints as a remote error. Its `gc --auto`
        # would run before the push's answer: the gitserver starts it afterwards, when due.
        env.update({"GIT_CONFIG_COUNT": "2", "GIT_CONFIG_KEY_0": "receive.maxInputSize",
                    "GIT_CONFIG_VALUE_0": str(max_push_size),
                    "GIT_CONFIG_KEY_1": "receive.autogc", "GIT_CONFIG_VALUE_1": "false"})
    env.update({
        "GIT_PROJECT_ROOT": str(project_root),
        "GIT_HTTP_EXPORT_ALL": "1",
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_PROTOCOL": f"HTTP/{request.version.major}.{request.version.minor}",
        "REQUEST_METHOD": request.method,
        "PATH_INFO": path_info,
        "QUERY_STRING": request.query_string,
        "CONTENT_TYPE": request.headers.get("Content-Type", ""),
        "REMOTE_ADDR": request.remote or "",
    })
    # Without CONTENT_LENGTH (chunked uploads) http-backend reads the body until EOF.
    if (length := request.headers.get("Content-Length")) is not None:
        env["CONTENT_LENGTH"] = length
    if (encoding := request.headers.get("Content-Encoding")) is not None:
        env["HTTP_CONTENT_ENCODING"] = encoding
    if (protocol := request.headers.get("Git-Protocol")) is not None:
        env["GIT_PROTOCOL"] = protocol
    return env


async def run_http_backend(request: web.Request, project_root: Path, path_info: str,
                           max_push_size: int | None = None) -> web.StreamResponse:
    """Answer ``request`` with ``git http-backend`` for ``path_info`` (``/<repo>.git/...``).

    ``max_push_size``: bytes of pack a push may send (git's ``receive.maxInputSize``); the request
    body is also cut after that plus ``BODY_SLACK`` bytes, whatever git makes of it.
    """
    has_body = request.method == "POST"
    proc = await asyncio.create_subprocess_exec(
        "git", "http-backend",
        stdin=asyncio.subprocess.PIPE if has_body else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=cgi_env(request, project_root, path_info, max_push_size),
    )
    assert proc.stdout is not None and proc.stderr is not None
    body_limit = None if max_push_size is None else max_push_size + BODY_SLACK
    feeder = asyncio.create_task(_feed(request, proc.stdin, body_limit)) if has_body else None
    stderr = asyncio.create_task(_drain_tail(proc.stderr))
    try:
        status, reason, headers = await _read_headers(proc.stdout)
        response = web.StreamResponse(status=status, reason=reason)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                response.headers.add(name, value)
        await response.prepare(request)
        while chunk := await proc.stdout.read(CHUNK):
            await response.write(chunk)
        if feeder is not None:
            await feeder
        rc = await proc.wait()
        err = await stderr
        if rc != 0:
            log.warning("git http-backend failed", path=path_info, rc=rc, stderr=err[-500:])
        await response.write_eof()
        return response
    finally:
        await _end(proc, feeder, stderr)


# What `git http-backend` sends before a ref advertisement (and its no-cache headers).
_RECEIVE_PACK_SERVICE_LINE = b"001f# service=git-receive-pack\n0000"
_NO_CACHE = {"Expires": "Fri, 01 Jan 1980 00:00:00 GMT", "Pragma": "no-cache",
             "Cache-Control": "no-cache, max-age=0, must-revalidate"}


def can_advertise_receive_pack(request: web.Request) -> bool:
    """Whether ``advertise_receive_pack`` answers this request as http-backend would: protocol v0
    or v1 (pushes never speak v2; a client asking for it gets http-backend's own answer)."""
    return "version=2" not in request.headers.get("Git-Protocol", "")


async def advertise_receive_pack(request: web.Request, git_dir: Path) -> web.StreamResponse:
    """``GET info/refs?service=git-receive-pack`` (the start of every push) answered by
    ``git receive-pack --stateless-rpc --advertise-refs`` alone, what http-backend runs for it
    (``--http-backend-info-refs``, its newer name, since git 2.34): one git process instead of
    two. The repository is one of ours (push enabled)."""
    env = git_env()
    if (protocol := request.headers.get("Git-Protocol")) is not None:
        env["GIT_PROTOCOL"] = protocol
    proc = await asyncio.create_subprocess_exec(
        "git", "receive-pack", "--stateless-rpc", "--advertise-refs", ".", cwd=git_dir,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    stderr = asyncio.create_task(_drain_tail(proc.stderr))
    try:
        first = await proc.stdout.read(CHUNK)
        if not first:
            rc = await proc.wait()
            log.warning("git receive-pack advertisement failed", repo=str(git_dir), rc=rc, stderr=(await stderr)[-500:])
            raise Internal("git receive-pack failed")
        response = web.StreamResponse(headers={"Content-Type": "application/x-git-receive-pack-advertisement",
                                               **_NO_CACHE})
        await response.prepare(request)
        await response.write(_RECEIVE_PACK_SERVICE_LINE + first)
        while chunk := await proc.stdout.read(CHUNK):
            await response.write(chunk)
        if (rc := await proc.wait()) != 0:
            log.warning("git receive-pack advertisement failed", repo=str(git_dir), rc=rc, stderr=(await stderr)[-500:])
        await response.write_eof()
        return response
    finally:
        await _end(proc, stderr)


async def _feed(request: web.Request, stdin: asyncio.StreamWriter | None, limit: int | None) -> None:
    assert stdin is not None
    sent = 0
    try:
        async for chunk in request.content.iter_chunked(CHUNK):
            sent += len(chunk)
            if limit is not None and sent > limit:
                log.warning("push body over the limit: cut", path=request.path, limit=limit)
                return  # the backend sees the body end early and fails the push
            stdin.write(chunk)
            await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        return  # the backend stopped reading (it answered an error); its output says why
    finally:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            stdin.close()
            await stdin.wait_closed()


async def _end(proc: asyncio.subprocess.Process, *tasks: asyncio.Task[Any] | None) -> None:
    """After a request: kill the git process if it still runs (the client went away, an error) and
    cancel the tasks feeding it or draining its stderr."""
    if proc.returncode is None:
        proc.kill()
        await proc.wait()
    for task in tasks:
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _drain_tail(stream: asyncio.StreamReader) -> str:
    """Read stderr to the end (so the child never blocks on it), keeping only the tail."""
    tail = b""
    while chunk := await stream.read(CHUNK):
        tail = (tail + chunk)[-MAX_STDERR_BYTES:]
    return tail.decode(errors="replace")


async def _read_headers(stdout: asyncio.StreamReader) -> tuple[int, str, list[tuple[str, str]]]:
    """Parse CGI response headers up to the blank line; ``Status:`` sets the HTTP status."""
    status, reason = 200, "OK"
    headers: list[tuple[str, str]] = []
    total = 0
    while True:
        line = await stdout.readline()
        total += len(line)
        if not line:
            raise Internal("git http-backend ended without a response")
        if total > MAX_HEADER_BYTES:
            raise Internal("git http-backend sent oversized headers")
        text = line.decode("latin-1").rstrip("\r\n")
        if not text:
            return status, reason, headers
        name, sep, value = text.partition(":")
        if not sep:
            raise Internal("git http-backend sent a malformed header")
        value = value.strip()
        if name.lower() == "status":
            code, _, rest = value.partition(" ")
            try:
                status = int(code)
            except ValueError:
                raise Internal("git http-backend sent a malformed status") from None
            reason = rest or reason
        else:
            headers.append((name, value))
