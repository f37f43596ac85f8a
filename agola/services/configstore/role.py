"""The configstore role: owns users, orgs, project groups, projects, remote sources, secrets and
variables, served over the internal REST API (``agola.services.configstore.api``).

Storage: coordination (``configstore/`` prefix: etcd, or embedded under ``<dataDir>/coord``),
object storage (``configstore.objectStorage``), a datamanager on both (``configdata``), and a
readdb mirrored in memory and persisted to ``<dataDir>/readdb/db``. Several instances may share
etcd + S3: each follows the datamanager, change groups keep their writes consistent.

Modes, maintenance and stop: ``agola.services.stateful``. Each normal period has a fresh
datamanager: an import done meanwhile (by any instance) rebuilt coordination under a new epoch,
which a fresh instance reads from scratch.
"""

from __future__ import annotations

from aiohttp import web

from agola.config import Config
from agola.errors import Unavailable
from agola.services.configstore.actions import ActionHandler
from agola.services.configstore.api import build_app
from agola.services.configstore.ops import Env
from agola.services.configstore.readdb import ConfigReadDB
from agola.services.stateful import StatefulRole
from agola.storage.datamanager import DataManager, DataManagerOptions
from agola.types.configstore import DATATYPES

COORD_PREFIX = "configstore/"
DATA_BASE_PATH = "configdata"


class ConfigstoreRole(StatefulRole[ConfigReadDB]):
    name = "configstore"
    data_base_path = DATA_BASE_PATH
    datatypes = tuple(DATATYPES)

    def __init__(
        self,
        config: Config,
        *,
        datamanager_options: DataManagerOptions | None = None,
        coord_prefix: str = COORD_PREFIX,
        env: Env | None = None,
        persist_readdb: bool = True,
    ) -> None:
        """``env``: ids, time and random secrets (deterministic tests inject theirs);
        ``persist_readdb``: keep the readdb in sqlite under ``<dataDir>/readdb`` (else it resyncs
        from storage on start)."""
        super().__init__(config, coord_prefix=coord_prefix,
                         datamanager_options=datamanager_options or DataManagerOptions())
        self.env = env
        self.persist_readdb = persist_readdb
        # What the data handlers call; None outside normal mode (they answer 503).
        self.actions: ActionHandler | None = None
        self._app: web.Application | None = None

    def web_app(self) -> web.Application:
        if self._app is None:
            self._app = build_app(self, api_token=self.config.api_token_for(self.name))
        return self._app

    async def datamanager_for_serving(self) -> DataManager:
        return self.new_datamanager()

    def new_readdb(self, dm: DataManager) -> ConfigReadDB:
        return ConfigReadDB(dm, self.readdb_path() if self.persist_readdb else None)

    async def serving_started(self) -> None:
        assert self.dm is not None and self.readdb is not None
        self.actions = ActionHandler(self.dm, self.readdb, self.env)

    async def serving_stopping(self) -> None:
        self.actions = None

    def require_actions(self) -> ActionHandler:
        """The action handler (the in-process ``ConfigstoreAPI``); ``Unavailable`` if not serving."""
        if self.actions is None:
            raise Unavailable("configstore is not serving (starting, stopping or in maintenance mode)")
        return self.actions
