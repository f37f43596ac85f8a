"""The gateway in front of a real configstore role, talking to it with the HTTP client (one
``agola serve``-like process running both roles)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agola.client import GatewayClient
from agola.client.errors import BadRequest as GatewayBadRequest
from agola.client.errors import NotExist as GatewayNotExist
from agola.client.types import (
    CreateOrgRequest,
    CreateProjectGroupRequest,
    CreateSecretRequest,
    CreateVariableRequest,
    VariableValueRequest,
)
from agola.config import parse_config
from agola.roleclients.configstore import ConfigstoreClient
from agola.services.configstore.role import ConfigstoreRole
from agola.services.gateway.role import GatewayRole
from agola.services.registry import load_role
from agola.services.role import RoleHost
from tests.support.services import free_port

from .conftest import FAST

ADMIN = "admintoken-for-configstore-tests-0123"


async def test_gateway_uses_the_configstore_over_http(tmp_path: Path) -> None:
    assert load_role("configstore") is ConfigstoreRole
    cs_port, gw_port = free_port(), free_port()
    config = parse_config(
        f"dataDir: {tmp_path}\n"
        f"configstore: {{web: {{listenAddress: '127.0.0.1:{cs_port}'}}}}\n"
        "gateway:\n"
        f"  adminToken: {ADMIN}\n"
        f"  web: {{listenAddress: '127.0.0.1:{gw_port}'}}\n"
    )
    assert config.gateway.configstore_url == f"http://127.0.0.1:{cs_port}"
    host = RoleHost([ConfigstoreRole(config, datamanager_options=FAST), GatewayRole(config)], shutdown_timeout=2)
    await host.start()
    admin = GatewayClient(f"http://127.0.0.1:{gw_port}", ADMIN)
    cs = ConfigstoreClient(f"http://127.0.0.1:{cs_port}")
    try:
        await admin.create_user("alice")
        token = await admin.create_user_token("alice", "default")
        async with GatewayClient(f"http://127.0.0.1:{gw_port}", token) as alice:
            # token auth: the gateway asks the configstore for the user by token
            assert (await alice.current_user()).username == "alice"
            await alice.create_org(CreateOrgRequest("org01"))
            group = await alice.create_project_group(CreateProjectGroupRequest("group01", "org/org01"))
            assert group.path == "org/org01/group01"
            await alice.create_secret("projectgroup", "org/org01/group01", CreateSecretRequest("creds", {"pw": "x"}))
            await alice.create_variable("projectgroup", "org/org01/group01", CreateVariableRequest(
                "PW", [VariableValueRequest("creds", "pw", {"branch": "master"})]))
            [secret] = await alice.list_secrets("projectgroup", "org/org01/group01")
            assert secret.name == "creds"
            # the configstore's 400 and 404 come through the gateway typed
            with pytest.raises(GatewayBadRequest, match="already exists"):
                await alice.create_org(CreateOrgRequest("org01"))
            with pytest.raises(GatewayNotExist):
                await alice.get_org("org02")
        # the same objects, straight from the configstore
        [v] = await cs.get_variables("projectgroup", "org/org01/group01")
        assert v.variable.values[0].when is not None and v.variable.values[0].when.branch is not None
        assert [m.user.name for m in await cs.get_org_members("org01")] == ["alice"]
    finally:
        await admin.close()
        await cs.close()
        await host.stop()
