"""Authentication and the admin-only/self-only rules, through the HTTP API (spec §6.1, quirks 5,
6, 10)."""

from __future__ import annotations

import time

import aiohttp
import pytest

from agola.client import errors
from agola.config import TokenSigning
from agola.errors import Unauthorized
from agola.services.gateway.auth import Authenticator, Credentials, TokenSigner, extract_credentials
from tests.gateway.conftest import ADMIN_TOKEN, Env


@pytest.mark.parametrize("env", ["http", "inprocess"], indirect=True)
async def test_identities_and_admin_only_actions(env: Env) -> None:
    # No credentials, or wrong ones: 401.
    with pytest.raises(errors.Unauthorized):
        await env.client().current_user()
    with pytest.raises(errors.Unauthorized):
        await env.client("not-a-token").current_user()
    # The admin token has no user.
    with pytest.raises(errors.BadRequest):
        await env.admin.current_user()

    alice, as_alice = await env.user("alice")
    _bob, as_bob = await env.user("bob")
    assert (await as_alice.current_user()).username == "alice"

    # Non-admins get 403 (not 500, quirk 5) for admin-only actions.
    with pytest.raises(errors.Forbidden):
        await as_alice.create_user("mallory")
    with pytest.raises(errors.Forbidden):
        await as_alice.list_users()
    with pytest.raises(errors.Forbidden):
        await as_alice.delete_user("bob")
    from agola.client.types import CreateRemoteSourceRequest
    with pytest.raises(errors.Forbidden):
        await as_alice.create_remote_source(CreateRemoteSourceRequest("gitea01", "gitea", "password", apiurl="http://x"))
    names = [u.username for u in await env.admin.list_users(asc=True)]
    assert names == ["alice", "bob"]

    # Tokens: the user themself or the admin (quirk 10 inverted this for deletion).
    with pytest.raises(errors.Forbidden):
        await as_alice.create_user_token("bob", "stolen")
    second = await as_alice.create_user_token("alice", "second")
    assert (await env.client(second).current_user()).id == alice.id
    with pytest.raises(errors.Forbidden):
        await as_bob.delete_user_token("alice", "second")
    await as_alice.delete_user_token("alice", "second")
    with pytest.raises(errors.Unauthorized):
        await env.client(second).current_user()
    await env.admin.delete_user_token("bob", "default")
    with pytest.raises(errors.Unauthorized):
        await as_bob.current_user()
    # Linked accounts: another user's are refused before anything else.
    with pytest.raises(errors.Forbidden):
        await as_alice.delete_user_linked_account("bob", "some-id")

    # Admin deletes a user: their token stops working.
    await env.admin.delete_user("alice")
    with pytest.raises(errors.Unauthorized):
        await as_alice.current_user()


async def test_jwt_bearer_and_access_token_query(env: Env) -> None:
    alice, _as_alice = await env.user("alice")
    signer = env.role.services.signer  # type: ignore[union-attr]
    jwt = signer.login_token(alice.id)
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{env.url}/api/v1alpha/user", headers={"Authorization": f"Bearer {jwt}"}) as r:
            assert r.status == 200 and (await r.json())["username"] == "alice"
        async with s.get(f"{env.url}/api/v1alpha/user", params={"access_token": jwt}) as r:
            assert r.status == 200
        tampered = jwt[:-3] + ("AAA" if not jwt.endswith("AAA") else "BBB")
        async with s.get(f"{env.url}/api/v1alpha/user", headers={"Authorization": f"bearer {tampered}"}) as r:
            assert r.status == 401
        expired = signer.login_token(alice.id, now=time.time() - signer.duration - 10)
        async with s.get(f"{env.url}/api/v1alpha/user", headers={"Authorization": f"bearer {expired}"}) as r:
            assert r.status == 401
        async with s.get(f"{env.url}/api/v1alpha/user", headers={"Authorization": "basic abc"}) as r:
            assert r.status == 401 and "unsupported" in (await r.json())["message"]
        # The generated hmac key survives in the gateway's dataDir.
        gw = env.role.config.gateway
        again = TokenSigner.from_config(gw.token_signing, gw.data_dir)
        assert again.decode(jwt)["sub"] == alice.id


async def test_body_over_limit_is_413_with_a_message(env: Env) -> None:
    async with aiohttp.ClientSession() as s:
        body = b'{"username": "' + b"x" * (1024 * 1024 + 10) + b'"}'
        async with s.post(f"{env.url}/api/v1alpha/users", data=body,
                          headers={"Authorization": f"token {ADMIN_TOKEN}", "Content-Type": "application/json"}) as r:
            assert r.status == 413
            assert "too large" in (await r.json())["message"]


async def test_user_tokens_work_without_an_admin_token(env: Env) -> None:
    # Quirk 6: with no adminToken configured the reference ignored user tokens.
    alice, _ = await env.user("alice")
    token = await env.admin.create_user_token("alice", "other")
    auth = Authenticator(env.configstore, TokenSigner("hmac", key=b"k"), admin_token="")
    ident = await auth.identify(Credentials("token", token))
    assert ident.user is not None and ident.user.id == alice.id and not ident.admin
    with pytest.raises(Unauthorized):
        await auth.identify(Credentials("token", ADMIN_TOKEN))


def test_rsa_tokens_verify_with_the_public_key(tmp_path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    priv, pub = tmp_path / "priv.pem", tmp_path / "pub.pem"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    signer = TokenSigner.from_config(TokenSigning(method="rsa", private_key_path=str(priv), public_key_path=str(pub)), "")
    token = signer.login_token("user-1")
    assert signer.decode(token)["sub"] == "user-1"
    # An hmac token made with the public key as secret (algorithm confusion) is refused.
    confused = TokenSigner("hmac", key=pub.read_bytes()).login_token("user-1")
    with pytest.raises(Unauthorized):
        signer.decode(confused)


def test_credentials_extraction() -> None:
    assert extract_credentials("Token abc", "") == Credentials("token", "abc")
    assert extract_credentials("BEARER a.b.c", "") == Credentials("bearer", "a.b.c")
    assert extract_credentials("", "a.b.c") == Credentials("bearer", "a.b.c")
    assert extract_credentials("", "plain") == Credentials("token", "plain")
    assert extract_credentials("", "").kind == ""
