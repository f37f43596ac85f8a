"""The common core of the internal role-to-role HTTP clients.

Errors come back as the typed ``agola.errors`` family rebuilt from the error body, so a remote
``NotExist`` is caught as ``NotExist``. Connection failures are ``Unavailable``. Response bodies
that may be big or long-lived (logs, archives, caches, exports) are ``ResponseStream`` objects.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping
from types import TracebackType
from typing import IO, Any, Self

import aiohttp

from agola.errors import Unavailable, from_response

# What a request body may be: bytes, an open file (sent with its length) or an async byte stream.
Body = bytes | IO[bytes] | AsyncIterable[bytes]

STREAM_CHUNK = 64 * 1024
# Logs relayed hop by hop (executor -> runservice -> gateway): each chunk costs a write and a read
# at every hop, so a relayed log takes what has arrived, up to this much, at once.
LOG_CHUNK = 1024 * 1024
# Streams last as long as their content (a followed log): only connecting is bounded.
NO_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30)


class ResponseStream:
    """A response body as an async iterator of byte chunks, with bounded memory.

    The request is sent by ``open()`` or else by the first iteration, so errors (typed:
    ``NotExist``, ``Unavailable``...) surface before any byte. Each chunk is what has arrived, at
    most ``chunk_size`` bytes, handed over at once (a followed log shows each line as it comes);
    the socket is read only as fast as the consumer iterates. Closing before the end
    (``aclose()``, leaving ``async with``, or dropping the stream) closes the connection, so the
    server stops producing; after the end the connection goes back to the pool.
    """

    def __init__(
        self, send: Callable[[], Awaitable[aiohttp.ClientResponse]], *, chunk_size: int = STREAM_CHUNK
    ) -> None:
        self._send = send
        self._resp: aiohttp.ClientResponse | None = None
        self._received = 0
        self._closed = False
        self.chunk_size = chunk_size

    async def open(self) -> ResponseStream:
        """Send the request now (idempotent); raises the typed error of a failed request."""
        if self._closed:
            raise RuntimeError("the stream is closed")
        if self._resp is None:
            self._resp = await self._send()
        return self

    @property
    def content_length(self) -> int | None:
        """The announced body size (known once open), None when streamed without one."""
        return self._resp.content_length if self._resp is not None else None

    @property
    def received(self) -> int:
        """Body bytes taken off the socket so far (handed over or buffered: at most a chunk or two
        more than consumed)."""
        return self._resp.content.total_bytes if self._resp is not None else self._received

    def __aiter__(self) -> ResponseStream:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        resp = (await self.open())._resp
        assert resp is not None
        try:
            chunk = await resp.content.read(self.chunk_size)
        except (aiohttp.ClientError, TimeoutError) as exc:
            await self.aclose()
            raise Unavailable(f"{resp.method} {resp.url}: stream interrupted: {str(exc) or type(exc).__name__}") from exc
        except BaseException:
            await self.aclose()
            raise
        if not chunk:
            await self.aclose()
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        resp, self._resp = self._resp, None
        if resp is None:
            return
        self._received = resp.content.total_bytes
        if resp.content.at_eof():
            resp.release()  # read to the end: the connection can be reused
        else:
            resp.close()  # closed early: drop the connection, the server stops sending

    async def read(self) -> bytes:
        """The whole body (for small ones: a file of a repository, an error-free short log)."""
        return b"".join([chunk async for chunk in self])

    async def __aenter__(self) -> ResponseStream:
        return await self.open()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __del__(self) -> None:
        # An abandoned stream must not hold a connection (nor warn about an unclosed response).
        if self._resp is not None and not self._closed:
            self._resp.close()


class HTTPClient:
    """A small JSON-over-HTTP client bound to one base URL (e.g. ``http://127.0.0.1:4000``)."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        session: aiohttp.ClientSession | None = None,
        api_prefix: str = "/api/v1alpha",
        timeout: float = 60.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_prefix = api_prefix
        self._token = token
        self._session = session
        self._own_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def url(self, path: str) -> str:
        return f"{self.base_url}{self.api_prefix}{path}"

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self._token:
            headers["Authorization"] = f"token {self._token}"
        if extra:
            headers.update(extra)
        return headers

    async def send(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
        read_bufsize: int | None = None,
    ) -> aiohttp.ClientResponse:
        """Send a request and return the response whatever its status (only a connection failure
        raises, ``Unavailable``). The caller reads and releases. ``read_bufsize``: how much of the
        body may wait in memory before the socket is paused (aiohttp's default: 64 KiB)."""
        kwargs: dict[str, Any] = {"headers": self._headers(headers), "timeout": timeout or self._timeout}
        if read_bufsize is not None:
            kwargs["read_bufsize"] = read_bufsize
        if params:
            kwargs["params"] = {k: _param(v) for k, v in params.items() if v is not None}
        if json_body is not None:
            kwargs["data"] = json.dumps(json_body).encode()
            kwargs["headers"]["Content-Type"] = "application/json"
        elif data is not None:
            kwargs["data"] = data
        try:
            return await self.session.request(method, self.url(path), **kwargs)
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise Unavailable(f"{method} {self.base_url}{self.api_prefix}{path}: {str(exc) or type(exc).__name__}") from exc

    async def request(self, method: str, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        """Send a request; a non-2xx answer raises the typed error. The caller reads and releases."""
        resp = await self.send(method, path, **kwargs)
        if resp.status >= 400:
            try:
                raw = await resp.read()
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = None
            finally:
                resp.release()
            raise from_response(resp.status, body, resp.reason or "")
        return resp

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = await self.request(method, path, **kwargs)
        async with resp:
            if resp.status == 204:
                return None
            raw = await resp.read()
            return json.loads(raw) if raw else None

    def stream(self, method: str, path: str, *, chunk_size: int = STREAM_CHUNK, **kwargs: Any) -> ResponseStream:
        """The response body as a ``ResponseStream`` (sent when opened or first iterated)."""
        kwargs.setdefault("timeout", NO_TIMEOUT)
        return ResponseStream(lambda: self.request(method, path, **kwargs), chunk_size=chunk_size)


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return str(value)
