"""Registration and login through a Gitea remote source (spec §6.3): password and OAuth2 sources,
the login token works on the API, the switches and wrong credentials are refused."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from tests.client.stack import ADMIN, RoleStack
from tests.forges.conftest import cli, follow_authorize
from tests.support.forge import GiteaEmulator


def call(url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_password_source_register_and_login(stack: RoleStack, emulator: GiteaEmulator) -> None:
    emulator.add_user("nora", "nora-pw")
    emulator.add_user("otto", "otto-pw")
    assert cli(stack, ADMIN, "remotesource", "create", "-n", "gitea", "--type", "gitea", "--auth-type", "password",
               "--api-url", emulator.url).exit_code == 0
    status, body = call(f"{stack.url}/api/register", {"username": "nora", "remote_source_name": "gitea",
                                                      "remote_source_login_name": "nora",
                                                      "remote_source_login_password": "nora-pw"})
    assert status == 201, body
    assert body["user"]["username"] == "nora" and body["user"]["linked_accounts"][0]["remote_user_name"] == "nora"
    status, body = call(f"{stack.url}/api/register", {"username": "nora2", "remote_source_name": "gitea",
                                                      "remote_source_login_name": "nora",
                                                      "remote_source_login_password": "nora-pw"})
    assert status == 400 and "already linked" in body["message"]

    status, body = call(f"{stack.url}/api/login", {"remote_source_name": "gitea", "login_name": "nora",
                                                   "password": "nora-pw"})
    assert status == 201 and body["user"]["username"] == "nora"
    status, me = call(f"{stack.url}/api/v1alpha/user", headers={"Authorization": f"bearer {body['token']}"})
    assert status == 200 and me["username"] == "nora"

    assert call(f"{stack.url}/api/login", {"remote_source_name": "gitea", "login_name": "nora",
                                           "password": "wrong"})[0] == 401
    status, body = call(f"{stack.url}/api/login", {"remote_source_name": "gitea", "login_name": "otto",
                                                   "password": "otto-pw"})
    assert status == 404 and "register first" in body["message"]

    assert cli(stack, ADMIN, "remotesource", "update", "--ref", "gitea", "--no-registration-enabled",
               "--no-login-enabled").exit_code == 0
    assert call(f"{stack.url}/api/register", {"username": "otto", "remote_source_name": "gitea",
                                              "remote_source_login_name": "otto",
                                              "remote_source_login_password": "otto-pw"})[0] == 400
    assert call(f"{stack.url}/api/login", {"remote_source_name": "gitea", "login_name": "nora",
                                           "password": "nora-pw"})[0] == 400


def test_oauth2_source_register_and_login(stack: RoleStack, emulator: GiteaEmulator) -> None:
    emulator.add_user("pia", "pia-pw")
    app = emulator.add_oauth_app(f"{stack.url}/oauth2/callback")
    assert cli(stack, ADMIN, "remotesource", "create", "-n", "gitea-oauth", "--type", "gitea", "--auth-type",
               "oauth2", "--api-url", emulator.url, "--clientid", app.client_id, "--secret",
               app.client_secret).exit_code == 0
    status, started = call(f"{stack.url}/api/register", {"username": "pia", "remote_source_name": "gitea-oauth"})
    assert status == 201 and started["oauth2_redirect"] and started["oauth2_nonce"]
    callback = follow_authorize(started["oauth2_redirect"], "pia", "pia-pw")
    assert call(callback)[0] == 403  # not the session that started it
    status, done = call(callback, headers={"X-Agola-OAuth2-Nonce": started["oauth2_nonce"]})
    assert status == 200 and done["request_type"] == "registeruser"
    assert done["response"]["user"]["username"] == "pia"

    status, started = call(f"{stack.url}/api/login", {"remote_source_name": "gitea-oauth"})
    assert status == 201
    callback = follow_authorize(started["oauth2_redirect"], "pia", "pia-pw")
    status, done = call(callback, headers={"X-Agola-OAuth2-Nonce": started["oauth2_nonce"]})
    assert status == 200 and done["request_type"] == "loginuser"
    status, me = call(f"{stack.url}/api/v1alpha/user", headers={"Authorization": f"bearer {done['response']['token']}"})
    assert status == 200 and me["username"] == "pia"
