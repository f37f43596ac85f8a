"""The gitserver role: ``gitserver.dataDir`` holds the bare repositories."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from agola.config import Config
from agola.services.gitserver.api import build_app
from agola.services.gitserver.repos import RepoStore
from agola.services.role import Role


class GitserverRole(Role):
    name = "gitserver"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.store = RepoStore(config.gitserver.data_dir)

    async def start(self) -> None:
        self.store.prepare()

    async def stop(self) -> None:
        # Stateless beyond the disk: in-flight git processes end with their requests; the ones
        # kept for file reads end here.
        await self.store.close()

    def web_app(self) -> web.Application:
        return build_app(self.store, api_token=self.config.api_token_for(self.name),
                         max_push_size=self.config.gitserver.max_push_size)

    def web_runner_options(self) -> dict[str, Any]:
        # git gzips large request bodies; git http-backend inflates them itself
        # (HTTP_CONTENT_ENCODING), so aiohttp must hand them over untouched.
        return {"auto_decompress": False}
