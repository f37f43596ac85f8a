"""A forge refusing a linked account's token (revoked on the forge) marks the account as needing
re-authorization, and the user sees why; linking the account again clears the mark."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from agola.util.http import API_PREFIX
from tests.client.stack import RoleStack
from tests.forges.conftest import cli
from tests.forges.test_github_gitlab_gateway import follow_authorize, link_and_create
from tests.support.forge import github as fake_github
from tests.support.forge.github import FakeGitHub, InThread

pytestmark = pytest.mark.skipif(not fake_github.PACK.is_dir(), reason="reference pack not present")


def linked_accounts(stack: RoleStack, token: str) -> list[dict[str, Any]]:
    req = urllib.request.Request(f"{stack.url}{API_PREFIX}/user", headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req) as resp:
        return list(json.loads(resp.read())["linked_accounts"])


def test_a_revoked_token_asks_to_reauthorize(stack: RoleStack) -> None:
    with InThread(FakeGitHub()) as server:
        fake = server.fake
        assert isinstance(fake, FakeGitHub)
        fake.add_user("revo")
        fake.browser_user = "revo"
        fake.add_repo("revo", "app")
        client = fake.add_app()
        token, _ = link_and_create(stack, "github", fake.url, client, "revo", "revo/app")
        [la] = linked_accounts(stack, token)
        assert la["needs_reauthorization"] == ""

        for value, login in list(fake.tokens.items()):  # the user revokes agola's access on GitHub
            if login == "revo":
                del fake.tokens[value]
        res = cli(stack, token, "user", "remoterepos", "-r", "github")
        assert res.exit_code != 0 and "re-authorize the linked account" in res.output, res.output
        [la] = linked_accounts(stack, token)
        assert "github list_user_repos" in la["needs_reauthorization"]
        assert "re-authorize the linked account" in la["needs_reauthorization"]
        shown = cli(stack, token, "user", "show", "revo")
        assert shown.exit_code == 0 and "needs re-authorization (github list_user_repos" in shown.output, shown.output

        # Linking the account again (a new token) clears the mark.
        started = cli(stack, token, "user", "linkedaccount", "create", "-n", "revo", "-r", "github")
        assert started.exit_code == 0, started.output
        done = cli(stack, token, "user", "linkedaccount", "complete",
                   follow_authorize(started.output.strip().splitlines()[-1]))
        assert done.exit_code == 0, done.output
        assert [a["needs_reauthorization"] for a in linked_accounts(stack, token)] == [""]
        assert cli(stack, token, "user", "remoterepos", "-r", "github").exit_code == 0
