"""The common core of the internal role-to-role HTTP clients.

Errors come back as the typed ``agola.errors`` family rebuilt from the error body, so a remote
``NotExist`` is caught as ``NotExist``. Connection failures are ``Unavailable``.
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator, Mapping

import aiohttp

from agola.errors import Unavailable, from_response


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

    async def __aenter__(self) -> "HTTPClient":
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

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> aiohttp.ClientResponse:
        """Send a request; a non-2xx answer raises the typed error. The caller reads and releases."""
        kwargs: dict[str, Any] = {"headers": self._headers(headers), "timeout": timeout or self._timeout}
        if params:
            kwargs["params"] = {k: _param(v) for k, v in params.items() if v is not None}
        if json_body is not None:
            kwargs["data"] = json.dumps(json_body).encode()
            kwargs["headers"]["Content-Type"] = "application/json"
        elif data is not None:
            kwargs["data"] = data
        try:
            resp = await self.session.request(method, self.url(path), **kwargs)
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise Unavailable(f"{method} {self.base_url}{self.api_prefix}{path}: {exc or type(exc).__name__}") from exc
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

    async def stream(self, method: str, path: str, chunk_size: int = 64 * 1024, **kwargs: Any) -> AsyncIterator[bytes]:
        resp = await self.request(method, path, **kwargs)
        async with resp:
            async for chunk in resp.content.iter_chunked(chunk_size):
                yield chunk


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return str(value)
