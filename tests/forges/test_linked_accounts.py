"""Linked accounts through the CLI and the gateway, against the Gitea emulator: a password source
(a token made with the user's login and password) and an OAuth2 source (authorize URL, the forge's
redirect followed programmatically, the callback bound to the session that started it)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.client.stack import ADMIN, RoleStack
from tests.forges.conftest import cli, follow_authorize, git, new_user, work_tree
from tests.forges.test_webhooks import PIPELINE
from tests.support.forge import GiteaEmulator
from tests.support.waiting import wait_for_sync


def test_password_source_links_with_a_forge_token(stack: RoleStack, emulator: GiteaEmulator) -> None:
    emulator.add_user("carol", "carol-pw")
    res = cli(stack, ADMIN, "remotesource", "create", "-n", "gitea", "--type", "gitea", "--auth-type", "password",
              "--api-url", emulator.url)
    assert res.exit_code == 0, res.output
    token = new_user(stack, "carol")
    bad = cli(stack, token, "user", "linkedaccount", "create", "-n", "carol", "-r", "gitea",
              "--remote-name", "carol", "--remote-password", "not-carols-pw-42")
    assert bad.exit_code == 1 and "gitea create_access_token: wrong login name or password" in bad.output
    assert "not-carols-pw-42" not in bad.output
    ok = cli(stack, token, "user", "linkedaccount", "create", "-n", "carol", "-r", "gitea",
             "--remote-name", "carol", "--remote-password", "carol-pw")
    assert ok.exit_code == 0 and "linked account created" in ok.output, ok.output
    shown = json.loads(cli(stack, token, "user", "show", "carol", "--json").stdout)
    assert [la["remote_user_name"] for la in shown["linked_accounts"]] == ["carol"]
    assert "token" not in json.dumps(shown["linked_accounts"])  # never the forge token
    assert any(t.name.startswith("agola-") for t in emulator.forge.tokens.values() if t.login == "carol")
    again = cli(stack, token, "user", "linkedaccount", "create", "-n", "carol", "-r", "gitea",
                "--remote-name", "carol", "--remote-password", "carol-pw")
    assert again.exit_code == 1 and "already has a linked account" in again.output
    other = new_user(stack, "mallory")
    denied = cli(stack, other, "user", "linkedaccount", "create", "-n", "carol", "-r", "gitea",
                 "--remote-name", "carol", "--remote-password", "carol-pw")
    assert denied.exit_code == 1


def test_oauth2_source_links_after_the_authorization(stack: RoleStack, emulator: GiteaEmulator) -> None:
    emulator.add_user("dave", "dave-pw")
    app = emulator.add_oauth_app(f"{stack.url}/oauth2/callback")
    res = cli(stack, ADMIN, "remotesource", "create", "-n", "gitea-oauth", "--type", "gitea", "--auth-type", "oauth2",
              "--api-url", emulator.url, "--clientid", app.client_id, "--secret", app.client_secret)
    assert res.exit_code == 0, res.output
    token = new_user(stack, "dave")
    started = cli(stack, token, "user", "linkedaccount", "create", "-n", "dave", "-r", "gitea-oauth")
    assert started.exit_code == 0, started.output
    authorize_url = started.output.strip().splitlines()[-1]
    assert authorize_url.startswith(emulator.url + "/login/oauth/authorize?")
    callback = follow_authorize(authorize_url, "dave", "dave-pw")
    assert callback.startswith(f"{stack.url}/oauth2/callback?")

    # Another agola user (or nobody) can't complete dave's authorization.
    intruder = new_user(stack, "eve")
    stolen = cli(stack, intruder, "user", "linkedaccount", "complete", callback)
    assert stolen.exit_code == 1 and "another session" in stolen.output
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(callback)
    assert info.value.code == 403
    forged = cli(stack, token, "user", "linkedaccount", "complete", callback.replace("state=", "state=x"))
    assert forged.exit_code == 1 and "invalid or expired oauth2 state" in forged.output

    done = cli(stack, token, "user", "linkedaccount", "complete", callback)
    assert done.exit_code == 0 and "linked account created" in done.output, done.output
    shown = json.loads(cli(stack, token, "user", "show", "dave", "--json").stdout)
    assert [la["remote_user_name"] for la in shown["linked_accounts"]] == ["dave"]


def test_oauth2_callback_in_the_browser_session(stack: RoleStack, emulator: GiteaEmulator, tmp_path: Path) -> None:
    """A browser that started the flow carries the nonce cookie and completes it unauthenticated."""
    emulator.add_user("fran", "fran-pw")
    token = new_user(stack, "fran")
    req = urllib.request.Request(f"{stack.url}/api/v1alpha/users/fran/linkedaccounts", method="POST",
                                 data=json.dumps({"remote_source_name": "gitea-oauth"}).encode(),
                                 headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as resp:
        assert resp.status == 201
        cookie = resp.headers["Set-Cookie"]
        redirect = json.loads(resp.read())["oauth2_redirect"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    callback = follow_authorize(redirect, "fran", "fran-pw")
    # Whoever reads the callback URL (logs, history) learns nothing from its state that completes
    # the flow: the state holds a digest of the nonce, not the cookie's value.
    state = urllib.parse.parse_qs(urllib.parse.urlsplit(callback).query)["state"][0]
    claims = json.loads(base64.urlsafe_b64decode(state.split(".")[1] + "=="))
    nonce = cookie.split(";")[0].split("=", 1)[1]
    assert nonce not in state and nonce not in json.dumps(claims)
    for guess in {str(v) for v in claims.values()}:
        thief = urllib.request.Request(callback, headers={"Cookie": f"agola_oauth2_nonce={guess}"})
        with pytest.raises(urllib.error.HTTPError) as stolen:
            urllib.request.urlopen(thief)
        assert stolen.value.code == 403
    browser = urllib.request.Request(callback, headers={"Cookie": cookie.split(";")[0]})
    with urllib.request.urlopen(browser) as resp:
        body = json.loads(resp.read())
    assert body["request_type"] == "createuserla"
    assert body["response"]["linked_account"]["remote_user_name"] == "fran"
    # A browser (asking for HTML) is sent on to the web UI's settings instead.
    assert cli(stack, token, "user", "linkedaccount", "delete", "-n", "fran", "--laid",
               body["response"]["linked_account"]["id"]).exit_code == 0
    with urllib.request.urlopen(req) as resp:
        cookie, redirect = resp.headers["Set-Cookie"], json.loads(resp.read())["oauth2_redirect"]
    callback = follow_authorize(redirect, "fran", "fran-pw")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    browser = urllib.request.Request(callback, headers={"Cookie": cookie.split(";")[0], "Accept": "text/html,*/*"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.build_opener(NoRedirect).open(browser)
    # The web UI's answer (agola.web.signin.oauth2_done): back to the settings the link started from.
    assert info.value.code == 303 and info.value.headers["Location"] == "/settings"
    shown = json.loads(cli(stack, token, "user", "show", "fran", "--json").stdout)
    assert [la["remote_user_name"] for la in shown["linked_accounts"]] == ["fran"]


def test_refreshed_oauth2_tokens_are_stored_on_the_linked_account(stack: RoleStack, emulator: GiteaEmulator) -> None:
    """Tokens expiring within 5 minutes are refreshed before a call; the forge invalidates the old
    refresh token, so a second call works only if the first stored the new pair."""
    emulator.add_user("gus", "gus-pw")
    emulator.create_repo("gus", "tool")
    token = new_user(stack, "gus")
    emulator.forge.oauth2_token_lifetime = 60
    try:
        started = cli(stack, token, "user", "linkedaccount", "create", "-n", "gus", "-r", "gitea-oauth")
        callback = follow_authorize(started.output.strip().splitlines()[-1], "gus", "gus-pw")
        assert cli(stack, token, "user", "linkedaccount", "complete", callback).exit_code == 0
        used = len(emulator.forge.refresh_tokens)
        for _ in range(3):
            res = cli(stack, token, "user", "remoterepos", "-r", "gitea-oauth")
            assert res.exit_code == 0 and "gus/tool" in res.output, res.output
    finally:
        emulator.forge.oauth2_token_lifetime = 3600
    assert len(emulator.forge.refresh_tokens) == used  # each refresh consumed the stored one


def test_a_burst_of_deliveries_with_an_expiring_token_refreshes_once(
        stack: RoleStack, emulator: GiteaEmulator, tmp_path: Path) -> None:
    """Ten deliveries at once for a project whose OAuth2 token expires soon: each builds (the
    forge accepts a refresh token once: concurrent refreshes with it would fail all but one)."""
    emulator.add_user("hana", "hana-pw")
    emulator.create_repo("hana", "svc")
    token = new_user(stack, "hana")
    emulator.forge.oauth2_token_lifetime = 60  # tokens expiring within the refresh margin
    try:
        started = cli(stack, token, "user", "linkedaccount", "create", "-n", "hana", "-r", "gitea-oauth")
        callback = follow_authorize(started.output.strip().splitlines()[-1], "hana", "hana-pw")
        assert cli(stack, token, "user", "linkedaccount", "complete", callback).exit_code == 0
        assert cli(stack, token, "project", "create", "-n", "svc", "--parent", "user/hana", "--remote-source",
                   "gitea-oauth", "--repo-path", "hana/svc").exit_code == 0
        # The stored token expires within a minute; the next one the forge gives lasts an hour.
        emulator.forge.oauth2_token_lifetime = 3600
        tree = work_tree(tmp_path / "w", {".agola/config.yml": PIPELINE}, "burst")
        git("push", "-q", emulator.http_url("hana/svc", "hana"), *[f"HEAD:refs/heads/h{i}" for i in range(10)],
            cwd=tree)

        def answered() -> list[Any] | None:
            mine = [d for d in emulator.deliveries if b"hana/svc" in d.body and d.status]
            return mine if len(mine) == 10 else None

        mine = wait_for_sync(answered, timeout=30, message="ten deliveries answered")
    finally:
        emulator.forge.oauth2_token_lifetime = 3600
    assert [d.status for d in mine] == [200] * 10, [d.response for d in mine if d.status != 200]
