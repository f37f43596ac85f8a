"""Real roles in one process for the client and CLI tests, on loopback with free ports and
embedded storage. They run in a background thread with their own event loop, because the code
under test (the CLI) calls ``asyncio.run`` itself.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

from agola.config import parse_config, with_generated_api_token
from agola.services import registry
from agola.services.role import RoleHost
from tests.support.services import free_port

ADMIN = "test-admin-token-0123456789abcdefghij"
# Without an executor direct runs stay queued: what cancel tests need, and fast.
CONTROL_PLANE = ("runservice", "configstore", "gateway", "gitserver")
ALL = ("runservice", "executor", "configstore", "scheduler", "gateway", "gitserver")
_NO_WEB = {"scheduler"}


class RoleStack:
    def __init__(self, tmp_path: Path, components: Sequence[str] = CONTROL_PLANE,
                 extra: dict[str, str] | None = None) -> None:
        self.components = tuple(components)
        web = {c: free_port() for c in self.components if c not in _NO_WEB}
        more = {"gateway": f"  adminToken: {ADMIN}\n", **(extra or {})}
        text = f"dataDir: {tmp_path / 'data'}\n"
        for c in self.components:
            lines = (f"  web: {{listenAddress: '127.0.0.1:{web[c]}'}}\n" if c in web else "") + more.get(c, "")
            text += f"{c}:\n{lines}" if lines else f"{c}: {{}}\n"
        self.config = parse_config(text)
        self.config.validate(set(self.components))
        # As `agola serve` does: no token configured, so one is generated under dataDir.
        self.config = with_generated_api_token(self.config, self.components)
        self.url = f"http://127.0.0.1:{web['gateway']}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.host: RoleHost | None = None

    def start(self) -> None:
        self.thread.start()

        async def start() -> None:
            roles = [registry.load_role(c)(self.config) for c in registry.ordered(set(self.components))]
            self.host = RoleHost(roles, shutdown_timeout=5)
            await self.host.start()

        asyncio.run_coroutine_threadsafe(start(), self.loop).result(60)

    def stop(self) -> None:
        if self.host is not None:
            asyncio.run_coroutine_threadsafe(self.host.stop(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
