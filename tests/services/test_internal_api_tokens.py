"""The internal role APIs (configstore, runservice, executor, gitserver) require their API token
on every route but ``/health``; tokens resolve Agola's way; an unprotected non-loopback listener
refuses to start; a generated token is private and reused; the APIs also serve over TLS.

The router walk covers every route a role registers, so a new route cannot be added unprotected.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import ssl
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from agola.cli.main import agola
from agola.config import INTERNAL_API_TOKEN_FILE, Config, parse_config, with_generated_api_token
from agola.errors import NotExist, Unauthorized
from agola.roleclients.gitserver import GitserverClient
from agola.services.configstore.role import ConfigstoreRole
from agola.services.executor.role import ExecutorRole
from agola.services.gitserver.role import GitserverRole
from agola.services.notification.role import NotificationRole
from agola.services.role import Role, WebServer
from agola.services.runservice.role import RunserviceRole
from tests.support.services import free_port

TOKEN = "internal-test-token-0123456789abcdefghij"

ROLES: dict[str, Callable[[Config], Role]] = {
    "configstore": ConfigstoreRole,
    "runservice": RunserviceRole,
    "executor": ExecutorRole,
    "gitserver": GitserverRole,
    "notification": NotificationRole,
}


def _config(tmp: Path, extra: str = "") -> Config:
    return parse_config(f"dataDir: {tmp / 'data'}\ninternalServicesAPIToken: {TOKEN}\n{extra}")


def _concrete(route: web.AbstractRoute) -> tuple[str, str]:
    """A request that reaches ``route``: its method (GET for ``*``) and path, variables filled."""
    info = route.resource.get_info() if route.resource is not None else {}
    path = info.get("path") or info.get("formatter") or ""
    path = re.sub(r"\{[^}]*\}", "x", path)
    return ("GET" if route.method == "*" else route.method), path


@pytest.fixture(params=sorted(ROLES))
async def role_client(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[web.Application, TestClient[Any, Any]]]:
    # Not started: a handler may answer 503 or 400, but the token is checked before any handler.
    app = ROLES[request.param](_config(tmp_path)).web_app()
    assert app is not None
    async with TestClient(TestServer(app)) as client:
        yield app, client


async def test_every_route_but_health_requires_the_token(
    role_client: tuple[web.Application, TestClient[Any, Any]],
) -> None:
    app, client = role_client
    routes = [_concrete(r) for r in app.router.routes() if r.method != "HEAD"]
    assert len(routes) > 2
    for method, path in routes:
        for headers in ({}, {"Authorization": "token wrong-token"}, {"Authorization": f"Bearer {TOKEN}x"}):
            resp = await client.request(method, path, headers=headers)
            body = await resp.json()
            if path == "/health":
                assert resp.status == 200, (method, path)
                continue
            assert resp.status == 401, (method, path, headers, resp.status)
            assert body["code"] == "unauthorized" and "API token" in body["message"]
        for scheme in ("token", "Bearer"):
            resp = await client.request(method, path, headers={"Authorization": f"{scheme} {TOKEN}"})
            await resp.read()
            assert resp.status != 401, (method, path, scheme)


# --- resolution ---------------------------------------------------------------------------------

def test_tokens_resolve_like_agola_from_the_role_key_to_the_shared_one() -> None:
    cfg = parse_config(
        "internalServicesAPIToken: shared\nconfigstoreAPIToken: cs\n"
        "runservice: {apiToken: rs-own}\ngateway: {runserviceAPIToken: gw-to-rs}\n")
    assert cfg.api_token_for("runservice") == "rs-own"
    assert cfg.api_token_for("runservice", caller="gateway") == "gw-to-rs"
    assert cfg.api_token_for("runservice", caller="scheduler") == "shared"
    assert cfg.api_token_for("configstore") == "cs"
    assert cfg.api_token_for("configstore", caller="gateway") == "cs"
    assert cfg.api_token_for("executor", caller="runservice") == "shared"
    assert "shared" not in repr(cfg) and "rs-own" not in repr(cfg)


# --- refusing to run open -----------------------------------------------------------------------

def test_a_role_listening_beyond_loopback_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    conf = tmp_path / "config.yml"
    conf.write_text(f"dataDir: {tmp_path / 'data'}\nconfigstore:\n  web: {{listenAddress: '0.0.0.0:{free_port()}'}}\n")
    result = CliRunner().invoke(agola, ["serve", "--config", str(conf), "--components", "configstore"])
    assert result.exit_code == 1
    assert "configstore.web.listenAddress" in result.output
    assert "internalServicesAPIToken" in result.output
    assert not (tmp_path / "data" / INTERNAL_API_TOKEN_FILE).exists()


# --- the generated token ------------------------------------------------------------------------

def test_without_a_token_one_is_generated_private_and_reused(tmp_path: Path) -> None:
    cfg = parse_config(f"dataDir: {tmp_path / 'data'}\n")
    first = with_generated_api_token(cfg, ["runservice", "gateway"])
    path = tmp_path / "data" / INTERNAL_API_TOKEN_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    token = first.api_token_for("runservice")
    assert len(token) >= 32
    assert first.api_token_for("runservice", caller="gateway") == token
    again = with_generated_api_token(parse_config(f"dataDir: {tmp_path / 'data'}\n"), ["runservice"])
    assert again.api_token_for("runservice") == token, "a restart reuses the token"
    configured = parse_config(f"dataDir: {tmp_path / 'other'}\ninternalServicesAPIToken: {TOKEN}\n")
    assert with_generated_api_token(configured, ["runservice"]) is configured
    assert not (tmp_path / "other").exists()


# --- TLS ----------------------------------------------------------------------------------------

def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp / "cert.pem", tmp / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


async def test_a_role_serves_https_and_its_client_talks_to_it_with_the_token(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    cfg = _config(tmp_path, f"gitserver:\n  web: {{listenAddress: '127.0.0.1:{free_port()}', tls: true, "
                            f"tlsCertFile: '{cert}', tlsKeyFile: '{key}'}}\n")
    cfg.validate({"gitserver"})
    url = cfg.gateway.gitserver_url
    assert url.startswith("https://127.0.0.1:")
    role = GitserverRole(cfg)
    await role.start()
    server = WebServer(role.web_app(), cfg.gitserver.web)
    await server.start()
    trust = ssl.create_default_context(cafile=str(cert))
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust)) as session:
            token = cfg.api_token_for("gitserver", caller="gateway")
            async with GitserverClient(url, token=token, session=session) as client:
                with pytest.raises(NotExist):
                    await client.read_file("someone/repo", "main", "README")
            async with GitserverClient(url, token="wrong", session=session) as client:
                with pytest.raises(Unauthorized):
                    await client.read_file("someone/repo", "main", "README")
        # Without trusting the certificate, the client refuses the server.
        async with GitserverClient(url, token=TOKEN) as client:
            with pytest.raises(Exception, match=r"(?i)certificate|ssl"):
                await client.read_file("someone/repo", "main", "README")
    finally:
        await server.stop()
        await role.stop()
