"""The emulator answers and sends Gitea's real JSON shapes: every field of the reference pack's
examples (real captures, or built from Gitea's structs where the name says CONSTRUCTED) is there,
with the same JSON type."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.forges.conftest import HookReceiver, git, work_tree
from tests.support.forge import GiteaEmulator
from tests.support.waiting import wait_for

PACK = Path(__file__).resolve().parents[1] / "support" / "forge" / "pack" / "gitea"
pytestmark = pytest.mark.skipif(not PACK.is_dir(), reason="reference pack not present")


def missing_fields(ref: Any, got: Any, path: str = "") -> list[str]:
    """Fields of ``ref`` absent from ``got`` (or of another JSON type), recursively."""
    if isinstance(ref, dict):
        if not isinstance(got, dict):
            return [f"{path}: expected an object"]
        out = []
        for key, value in ref.items():
            if key not in got:
                out.append(f"{path}.{key}")
            elif value is not None and got[key] is not None:
                out.extend(missing_fields(value, got[key], f"{path}.{key}"))
        return out
    if isinstance(ref, list):
        if not isinstance(got, list):
            return [f"{path}: expected a list"]
        return missing_fields(ref[0], got[0], f"{path}[0]") if ref and got else []
    if isinstance(ref, bool) != isinstance(got, bool) or isinstance(ref, str) != isinstance(got, str):
        return [f"{path}: {type(got).__name__} instead of {type(ref).__name__}"]
    return []


def example(name: str) -> Any:
    return json.loads((PACK / name).read_text())


async def test_api_answers_have_gitea_shapes(emulator: GiteaEmulator, receiver: HookReceiver, tmp_path: Path) -> None:
    emulator.add_user("shaper", "pw")
    emulator.create_repo("shaper", "shapes")
    tree = work_tree(tmp_path / "w", {"a": "1\n"})
    git("push", "-q", emulator.http_url("shaper/shapes", "shaper"), "main", cwd=tree)
    sha = git("rev-parse", "HEAD", cwd=tree)
    token = emulator.token_for("shaper")
    api = f"{emulator.url}/api/v1"
    auth = {"Authorization": f"token {token}"}
    app = emulator.add_oauth_app("http://cb/")
    async with aiohttp.ClientSession(headers=auth) as http:
        async def call(method: str, path: str, body: Any = None, status: int = 200) -> Any:
            async with http.request(method, api + path, json=body) as resp:
                assert resp.status == status, await resp.text()
                return await resp.json()

        checks = {
            "api_user_GET.json": await call("GET", "/user"),
            "api_repo_GET.json": await call("GET", "/repos/shaper/shapes"),
            "api_user_repos_GET_list.json": await call("GET", "/user/repos"),
            "api_deploy_key_POST_create_response.CONSTRUCTED.json": await call(
                "POST", "/repos/shaper/shapes/keys", {"title": "k", "key": "ssh-ed25519 AAAAC3Nz k", "read_only": True}, 201),
            "api_hook_POST_create_response.CONSTRUCTED.json": await call(
                "POST", "/repos/shaper/shapes/hooks", {"type": "gitea", "config": {"url": receiver.url, "content_type": "json",
                                                                                   "secret": "s"},
                                                       "events": ["push", "pull_request"], "active": True}, 201),
            "api_status_POST_create_response.json": await call(
                "POST", f"/repos/shaper/shapes/statuses/{sha}", {"state": "success", "context": "c"}, 201),
            "api_error_404.CONSTRUCTED.json": await call("GET", "/repos/shaper/nope", status=404),
            "api_git_commit_GET.json": await call("GET", f"/repos/shaper/shapes/git/commits/{sha}"),
            "api_version_GET.CONSTRUCTED.json": await call("GET", "/version"),
        }
        http.headers.pop("Authorization")
        checks["api_user_token_POST_create_response.CONSTRUCTED.json"] = await call(
            "POST", "/users/shaper/tokens", {"name": "t1", "scopes": ["read:user"]}, 401)
        async with http.post(f"{api}/users/shaper/tokens", json={"name": "t1"},
                             headers={"Authorization": "Basic c2hhcGVyOnB3"}) as resp:
            checks["api_user_token_POST_create_response.CONSTRUCTED.json"] = await resp.json()
        async with http.get(f"{emulator.url}/login/oauth/authorize", allow_redirects=False,
                            params={"client_id": app.client_id, "redirect_uri": app.redirect_uri,
                                    "response_type": "code", "scope": "", "state": "s"},
                            headers={"Authorization": "Basic c2hhcGVyOnB3"}) as resp:
            code = resp.headers["Location"].split("code=")[1].split("&")[0]
        async with http.post(f"{emulator.url}/login/oauth/access_token",
                             data={"grant_type": "authorization_code", "code": code, "redirect_uri": app.redirect_uri,
                                   "client_id": app.client_id, "client_secret": app.client_secret}) as resp:
            checks["oauth2_access_token_response.CONSTRUCTED.json"] = await resp.json()
    for name, got in checks.items():
        assert missing_fields(example(name), got) == [], name

    commit_sha = git("rev-parse", "HEAD", cwd=tree)
    (tree / "b").write_text("2\n")
    git("add", "b", cwd=tree)
    git("commit", "-q", "-m", "second", cwd=tree)
    git("push", "-q", emulator.http_url("shaper/shapes", "shaper"), "main", cwd=tree)
    await wait_for(lambda: any(commit_sha.encode() in r.body for r in receiver.received), message="push delivery")
    push = next(r for r in receiver.received if commit_sha.encode() in r.body)
    assert missing_fields(example("webhook_push_branch.json"), json.loads(push.body)) == []
    for header in ("X-Gitea-Event", "X-Gitea-Delivery", "X-Gitea-Signature", "X-Hub-Signature-256"):
        assert push.headers[header]
