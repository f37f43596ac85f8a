"""Typed client of the gitserver (spec §6.8), used by the gateway: raw files of a commit (the
pipeline file of a direct run) and the git smart HTTP exchange its ``/repos`` proxy relays.

Repositories are addressed as ``<userID>/<repoUUID>`` (without ``.git``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

from agola.roleclients.base import NO_TIMEOUT, HTTPClient, ResponseStream


class GitserverClient(HTTPClient):
    def __init__(self, base_url: str, *, token: str | None = None, session: aiohttp.ClientSession | None = None,
                 timeout: float = 60.0) -> None:
        super().__init__(base_url, token=token, session=session, api_prefix="/repos", timeout=timeout)

    def get_file(self, repo: str, rev: str, path: str) -> ResponseStream:
        """The bytes of ``path`` at ``rev`` (a commit sha or a ref); ``NotExist`` when missing."""
        return self.stream("GET", f"/{_quote(repo)}.git/raw/{_quote(rev)}/{_quote(path)}")

    async def read_file(self, repo: str, rev: str, path: str) -> bytes:
        return await self.get_file(repo, rev, path).read()

    async def relay(
        self, method: str, rest: str, *, params: Mapping[str, str], headers: Mapping[str, str], data: Any = None
    ) -> aiohttp.ClientResponse:
        """A git smart HTTP request (``<repo>.git/info/refs``, ``.../git-upload-pack``...) passed
        through as is: the answer comes back whatever its status, bodies stream both ways. Only an
        unreachable gitserver raises (``Unavailable``). The caller releases the response."""
        return await self.send(method, f"/{rest}", params=params, headers=headers, data=data, timeout=NO_TIMEOUT)


def _quote(part: str) -> str:
    return quote(part, safe="/")


__all__ = ["GitserverClient"]
