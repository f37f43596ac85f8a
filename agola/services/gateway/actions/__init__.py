"""The gateway's business logic. HTTP handlers parse, then call one of these functions with the
caller's ``Identity``; the functions check permissions, talk to the configstore, runservice and
gitserver through ``Services``, and return typed values the handlers serialize."""

from __future__ import annotations

from typing import Any

import attrs

from agola.roleclients.configstore import ConfigstoreAPI
from agola.roleclients.gitserver import GitserverClient
from agola.roleclients.runservice import RunserviceClient
from agola.services.gateway.auth import TokenSigner


@attrs.define
class Services:
    """The gateway's dependencies. ``configstore`` is a ``ConfigstoreAPI`` (the HTTP client, or the
    configstore's in-process action handler)."""

    configstore: ConfigstoreAPI
    runservice: RunserviceClient
    gitserver_url: str
    api_exposed_url: str
    signer: TokenSigner
    # Where browsers reach the web UI (OAuth2 callbacks, run links); default: api_exposed_url.
    web_exposed_url: str = ""
    # The gitserver's API token (``gateway.gitserverAPIToken``), sent by run creation and /repos.
    gitserver_token: str = attrs.field(default="", repr=False)
    # Raw file fetcher for run creation, overridable in tests; default: the gitserver.
    extra: dict[str, Any] = attrs.field(factory=dict)
    # The client run creation reads pipeline files with: one session, its connections kept alive.
    gitserver: GitserverClient | None = attrs.field(default=None, repr=False)
