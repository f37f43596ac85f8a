"""The gateway role: the public API in front of the configstore, the runservice and the
gitserver (spec §6). Stateless apart from the generated token signing key and admin token in its
``dataDir``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from agola.config import Config
from agola.roleclients.configstore import ConfigstoreAPI, ConfigstoreClient
from agola.roleclients.gitserver import GitserverClient
from agola.roleclients.notification import NotificationClient
from agola.roleclients.runservice import RunserviceClient
from agola.services.gateway.actions import Services
from agola.services.gateway.admintoken import admin_token
from agola.services.gateway.api import build_app
from agola.services.gateway.auth import Authenticator, TokenSigner
from agola.services.role import Role
from agola.web import add_web_ui


class GatewayRole(Role):
    name = "gateway"

    def __init__(self, config: Config, *, configstore: ConfigstoreAPI | None = None) -> None:
        """``configstore``: a ``ConfigstoreAPI`` to use instead of the HTTP client (tests, or a
        configstore in the same process)."""
        super().__init__(config)
        self._configstore_override = configstore
        self.services: Services | None = None
        self.auth: Authenticator | None = None

    async def start(self) -> None:
        gw = self.config.gateway
        signer = TokenSigner.from_config(gw.token_signing, gw.data_dir)
        configstore = self._configstore_override
        if configstore is None:
            configstore = ConfigstoreClient(gw.configstore_url, token=self._api_token("configstore"))
        self.services = Services(
            configstore=configstore,
            runservice=RunserviceClient(gw.runservice_url, token=self._api_token("runservice")),
            gitserver_url=gw.gitserver_url,
            gitserver_token=self._api_token("gitserver"),
            api_exposed_url=gw.api_exposed_url,
            web_exposed_url=gw.web_exposed_url,
            signer=signer,
            gitserver=GitserverClient(gw.gitserver_url, token=self._api_token("gitserver")),
        )
        # Run webhook and commit status deliveries live in the notification role.
        self.services.extra["notification"] = NotificationClient(
            gw.notification_url, token=self._api_token("notification"))
        self.auth = Authenticator(configstore, signer, admin_token(gw))

    def _api_token(self, api: str) -> str:
        return self.config.api_token_for(api, caller=self.name)

    async def stop(self) -> None:
        svc, self.services = self.services, None
        if svc is None:
            return
        await svc.runservice.close()
        if svc.gitserver is not None:
            await svc.gitserver.close()
        notification = svc.extra.get("notification")
        if isinstance(notification, NotificationClient):
            await notification.close()
        if isinstance(svc.configstore, ConfigstoreClient):
            await svc.configstore.close()

    def web_app(self) -> web.Application:
        assert self.services is not None and self.auth is not None, "start() first"
        gw = self.config.gateway
        app = build_app(self.services, self.auth, allowed_origins=gw.web.allowed_origins)
        add_web_ui(app, gw)
        return app

    def web_runner_options(self) -> dict[str, Any]:
        # Git request bodies pass through the /repos proxy still gzipped.
        return {"auto_decompress": False}
