"""The web UI's organization, project group, project, settings and admin pages in headless
Chromium: the tree navigation, members, secrets by name only (never a value), variables, the
project's runs, API tokens created (shown once) and deleted, admin pages for admins only, 403
pages for a user outside a private organization, and the keyboard basics."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from tests.support.forge import GiteaEmulator
from tests.web.conftest import ADMIN, PHONE, Web
from tests.web.test_browser import new_page, share_session, shot, sign_in

SECRET_VALUE = "s3cr3t-value-never-shown"


@pytest.fixture(scope="module")
def gitea(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GiteaEmulator]:
    emulator = GiteaEmulator(tmp_path_factory.mktemp("gitea"), ssh=False).start()
    try:
        yield emulator
    finally:
        emulator.stop()


def _ref(path: str) -> str:
    return quote(path, safe="")


def test_sign_in_and_register_with_a_password_remote_source_account(web: Web, browser: Any, gitea: GiteaEmulator) -> None:
    gitea.add_user("kim", "kim-password")
    web.api(ADMIN, "POST", "/remotesources", {"name": "gitea", "type": "gitea", "apiurl": gitea.url,
                                               "auth_type": "password", "login_enabled": True,
                                               "registration_enabled": True})
    web.api("", "POST", "/register", {"username": "kim", "remote_source_name": "gitea",
                                      "remote_source_login_name": "kim", "remote_source_login_password": "kim-password"})
    page = new_page(browser, web)
    page.goto("/login")
    page.get_by_label("Remote source", exact=True).select_option("gitea")
    page.get_by_label("Login", exact=True).fill("kim")
    page.get_by_label("Password", exact=True).fill("wrong")
    page.get_by_role("button", name="Continue with gitea").click()
    expect(page.get_by_role("alert")).to_be_visible()
    assert "kim-password" not in page.content()
    shot(page, "login-remote")
    page.get_by_label("Password", exact=True).fill("kim-password")
    page.get_by_role("button", name="Continue with gitea").click()
    expect(page.get_by_role("heading", name="Recent runs")).to_be_visible()
    expect(page.locator(".me")).to_have_text("kim")
    page.get_by_role("link", name="Settings").click()
    linked = page.get_by_role("region", name="Linked accounts")
    expect(linked.locator('tr[data-linked="gitea"]')).to_contain_text("kim")
    # Unlink it (with a confirmation), then link it again with the Gitea password.
    linked.get_by_role("button", name="Unlink gitea").click()
    expect(linked.locator('tr[data-linked="gitea"]')).to_have_count(0)
    assert any("Unlink your gitea account kim" in m for m in page.dialogs)  # type: ignore[attr-defined]
    linked.get_by_label("Login", exact=True).fill("kim")
    linked.get_by_label("Password", exact=True).fill("not-it")
    linked.get_by_role("button", name="Link", exact=True).click()
    expect(page.get_by_role("region", name="Linked accounts").get_by_role("alert")).to_have_text(
        "Wrong login or password for gitea.")
    linked.get_by_label("Login", exact=True).fill("kim")
    linked.get_by_label("Password", exact=True).fill("kim-password")
    linked.get_by_role("button", name="Link", exact=True).click()
    expect(linked.locator('tr[data-linked="gitea"]')).to_contain_text("kim")

    # A new user registers with their Gitea account and is signed in at once.
    gitea.add_user("lea-gitea", "lea-password")
    newcomer = new_page(browser, web)
    newcomer.goto("/login")
    newcomer.get_by_text("New here? Register with a git host account").click()
    newcomer.get_by_label("Agola user name").fill("lea")
    newcomer.get_by_label("Login on the remote source").fill("lea-gitea")
    newcomer.get_by_label("Password on the remote source").fill("lea-password")
    newcomer.get_by_role("button", name="Register and sign in").click()
    expect(newcomer.locator(".me")).to_have_text("lea")


def test_sign_in_and_link_through_an_oauth2_remote_source(web: Web, browser: Any, gitea: GiteaEmulator) -> None:
    gitea.add_user("ola-gitea", "ola-password")
    app = gitea.add_oauth_app(f"{web.url}/oauth2/callback")
    web.api(ADMIN, "POST", "/remotesources", {"name": "gitea-oauth", "type": "gitea", "apiurl": gitea.url,
                                               "auth_type": "oauth2", "oauth_2_client_id": app.client_id,
                                               "oauth_2_client_secret": app.client_secret, "login_enabled": True,
                                               "registration_enabled": True})
    token = web.user("ola")
    # The emulator's authorize page signs its user in with HTTP Basic: the browser answers it.
    context = browser.new_context(base_url=web.url, http_credentials={
        "username": "ola-gitea", "password": "ola-password", "origin": gitea.url})
    page = context.new_page()
    page.set_default_timeout(20_000)
    sign_in(page, token)
    page.goto("/settings")
    linked = page.get_by_role("region", name="Linked accounts")
    # To the forge and back through the callback to the settings, the account linked.
    with page.expect_response(lambda r: "/oauth2/callback?" in r.url) as back:
        linked.get_by_role("button", name="Link account of gitea-oauth").click()
    assert back.value.status == 303, back.value.text()
    expect(page).to_have_url(f"{web.url}/settings")
    expect(linked.locator('tr[data-linked="gitea-oauth"]')).to_contain_text("ola-gitea")
    expect(linked.get_by_role("button", name="Link account of gitea-oauth")).to_have_count(0)

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    shot(page, "login-oauth2")
    page.get_by_role("button", name="Sign in with gitea-oauth").click()
    expect(page.get_by_role("heading", name="Recent runs")).to_be_visible()
    expect(page.locator(".me")).to_have_text("ola")
    assert page.url == f"{web.url}/"
    # The login token stayed on the server: the browser has the session cookie only.
    cookies = {c["name"]: c["value"] for c in context.cookies(web.url)}
    assert "agola_oauth2_nonce" not in cookies
    assert not any(v.count(".") == 2 and v.startswith("ey") for v in cookies.values())
    context.close()

    # A forge account of no agola user: an error page saying so; it registers, then signs in.
    gitea.add_user("pia-gitea", "pia-password")
    context = browser.new_context(base_url=web.url, http_credentials={
        "username": "pia-gitea", "password": "pia-password", "origin": gitea.url})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto("/login")
    page.get_by_role("button", name="Sign in with gitea-oauth").click()
    expect(page.get_by_role("alert")).to_contain_text("register first")
    expect(page.get_by_role("heading", level=1)).to_contain_text("404")
    page.goto("/login")
    register = page.locator("details", has_text="Register through a git host")
    register.get_by_text("New here? Register through a git host").click()
    register.get_by_label("Agola user name").fill("pia")
    register.get_by_role("button", name="Register through the git host").click()
    expect(page.get_by_role("status")).to_have_text("Registered as pia: sign in.")
    page.get_by_role("button", name="Sign in with gitea-oauth").click()
    expect(page.locator(".me")).to_have_text("pia")
    context.close()


PIPELINE = """version: v0
runs:
  - name: build
    tasks:
      - name: compile
        runtime: {containers: [{image: busybox}]}
        steps: [{run: {name: compile, command: "echo compiled"}}]
"""


def _git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def test_a_forge_project_runs_by_push_and_by_hand(web: Web, browser: Any, gitea: GiteaEmulator) -> None:
    gitea.add_user("max", "max-password")
    gitea.create_repo("max", "shop")
    if not any(rs["name"] == "gitea" for rs in web.api(ADMIN, "GET", "/remotesources")):
        web.api(ADMIN, "POST", "/remotesources", {"name": "gitea", "type": "gitea", "apiurl": gitea.url,
                                                   "auth_type": "password", "login_enabled": True,
                                                   "registration_enabled": True})
    token = web.user("max")
    web.api(token, "POST", "/users/max/linkedaccounts", {"remote_source_name": "gitea",
                                                          "remote_source_login_name": "max",
                                                          "remote_source_login_password": "max-password"})
    web.api(token, "POST", "/projects", {"name": "shop", "parent_ref": "user/max", "remote_source_name": "gitea",
                                         "repo_path": "max/shop"})
    tree = web.tmp / "shop"
    tree.mkdir()
    (tree / ".agola").mkdir()
    (tree / ".agola" / "config.yml").write_text(PIPELINE)
    _git("init", "-q", "-b", "main", cwd=tree)
    _git("-c", "user.email=max@example.com", "-c", "user.name=Max", "commit", "-q", "--allow-empty", "-m", "x",
         cwd=tree)
    _git("add", "-A", cwd=tree)
    _git("-c", "user.email=max@example.com", "-c", "user.name=Max", "commit", "-q", "-m", "the pipeline", cwd=tree)
    _git("push", "-q", gitea.http_url("max/shop", "max"), "main", cwd=tree)  # the webhook creates a run

    page = new_page(browser, web)
    sign_in(page, token)
    page.goto("/projects/user/max/shop")
    recent = page.locator("#project-runs")
    expect(recent.locator("tbody tr")).to_have_count(1, timeout=30_000)  # live: from the run events
    expect(recent.locator("tbody tr [data-state]")).to_have_text("success", timeout=30_000)
    expect(page.locator("#project-branch")).to_contain_text("main")

    page.get_by_label("Name", exact=True).fill("main")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page).to_have_url(re.compile(r"/runs/[^/]+$"))
    expect(page.locator("#run-live h1 [data-state]")).to_have_text("success", timeout=30_000)
    expect(page.locator("dl.meta")).to_contain_text("manual")
    page.locator('dl.meta a[href^="/runs?group="]').click()  # the run's group: project, branch main
    expect(page.locator(".crumbs")).to_contain_text("project user/max/shop")
    expect(page.locator("tbody tr")).to_have_count(2)
    page.goto("/projects/user/max/shop")
    expect(page.locator("#project-runs tbody tr")).to_have_count(2)
    shot(page, "project")

    # The home page lists the project's runs and max's direct runs together, newest first, live.
    page.goto("/")
    home = page.locator("#home-runs")
    expect(home.locator("tbody tr")).to_have_count(2)
    expect(home.locator("tbody tr .place").first).to_have_text("user/max/shop")
    page.evaluate("window.notReloaded = true")
    web.direct_run(token, web.repo("max-direct", PIPELINE), "feature")
    expect(home.locator("tbody tr")).to_have_count(3, timeout=30_000)
    newest = home.locator("tbody tr").first
    expect(newest.locator(".place")).to_have_text("direct run")
    expect(newest.locator("[data-state]")).to_have_text("success", timeout=30_000)
    assert page.evaluate("window.notReloaded") is True
    page.locator("tbody tr .place a", has_text="user/max/shop").first.click()
    expect(page).to_have_url(re.compile(r"/projects/user%2Fmax%2Fshop$"))
    page.goto("/")
    shot(page, "home-projects")


def test_orgs_groups_projects_settings_and_admin_pages(web: Web, browser: Any) -> None:
    frank, gina, hank = web.user("frank"), web.user("gina"), web.user("hank")
    web.api(frank, "POST", "/orgs", {"name": "acme", "visibility": "private"})
    web.api(frank, "PUT", "/orgs/acme/members/gina", {"role": "member"})
    web.api(frank, "POST", "/projectgroups", {"name": "backend", "parent_ref": "org/acme"})
    web.api(frank, "POST", "/projects", {"name": "api", "parent_ref": "org/acme/backend"})
    web.api(frank, "POST", f"/projectgroups/{_ref('org/acme/backend')}/secrets",
            {"name": "deploykey", "type": "internal", "data": {"key": SECRET_VALUE}})
    web.api(frank, "POST", f"/projects/{_ref('org/acme/backend/api')}/variables",
            {"name": "deploy-key", "values": [{"secret_name": "deploykey", "secret_var": "key",
                                               "when": {"branch": "main"}}]})

    page = new_page(browser, web)
    sign_in(page, gina)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Orgs").click()
    page.get_by_role("link", name="acme").click()
    members = page.locator("table.members")
    expect(members.locator("tr", has_text="frank")).to_contain_text("owner")
    expect(members.locator("tr", has_text="gina")).to_contain_text("member")
    page.get_by_role("link", name="backend/").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("backend")
    expect(page.locator("table.secrets")).to_contain_text("deploykey")
    page.get_by_role("link", name="api", exact=True).click()
    expect(page).to_have_url(re.compile(r"/projects/org/acme/backend/api$"))
    expect(page.locator(".crumbs")).to_contain_text("acme / backend / api")
    variables = page.locator("table.variables")
    expect(variables).to_contain_text("deploy-key")
    expect(variables).to_contain_text("deploykey")
    expect(variables).to_contain_text("branch main")
    expect(page.locator("table.secrets")).to_contain_text("org/acme/backend")
    assert SECRET_VALUE not in page.content()
    shot(page, "project-secrets")
    phone = new_page(browser, web, PHONE)
    share_session(page.context, phone.context)
    phone.goto(page.url)
    expect(phone.locator("table.variables")).to_contain_text("deploy-key")
    shot(phone, "project-phone")
    page.get_by_role("link", name="Branches").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Latest run of each group")
    expect(page.locator(".crumbs")).to_contain_text("project org/acme/backend/api")

    # A user outside the private organization gets 403 pages, without its data.
    outsider = new_page(browser, web)
    sign_in(outsider, hank)
    for path in ("/orgs/acme", "/groups/org/acme/backend", "/projects/org/acme/backend/api"):
        response = outsider.goto(path)
        assert response is not None and response.status == 403, path
        expect(outsider.locator("body")).not_to_contain_text("deploykey")
    outsider.goto("/orgs")
    expect(outsider.locator("body")).not_to_contain_text("acme")
    response = outsider.goto("/admin/users")
    assert response is not None and response.status == 403
    response = outsider.goto("/admin/remotesources")
    assert response is not None and response.status == 403

    # Settings: a new token is shown once; it works; deleting it takes it away.
    page.get_by_role("link", name="Settings").click()
    page.get_by_label("New token name").fill("ci")
    page.get_by_role("button", name="Create token").click()
    value = page.locator("#new-token").inner_text().strip()
    assert web.api(value, "GET", "/user")["username"] == "gina"
    shot(page, "settings")
    assert value not in page.url
    page.goto("/settings")
    expect(page.locator("table.tokens")).to_contain_text("ci")
    assert value not in page.content()
    page.get_by_role("button", name="Delete token ci").click()
    expect(page.locator('tr[data-token="ci"]')).to_have_count(0)
    assert any("Delete token ci" in m for m in page.dialogs)  # type: ignore[attr-defined]

    # Admin pages, for the admin.
    admin = new_page(browser, web)
    admin.goto("/login")
    admin.get_by_label("API token").fill(ADMIN)
    admin.get_by_role("button", name="Sign in", exact=True).click()
    admin.get_by_role("link", name="Admin").click()
    for name in ("frank", "gina", "hank"):
        expect(admin.locator("table.users")).to_contain_text(name)
    shot(admin, "admin-users")
    admin.get_by_role("link", name="Remote sources").click()
    expect(admin.get_by_role("heading", level=1)).to_have_text("Remote sources")
    expect(admin.locator("table.sources")).to_contain_text("gitea")  # from the remote sign-in test


def test_keyboard_skip_link_and_navigation(web: Web, browser: Any) -> None:
    page = new_page(browser, web)
    sign_in(page, web.user("ida"))
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Tab")  # the brand link, then the main navigation in order
    page.keyboard.press("Tab")
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Home")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    nav_projects = page.get_by_role("navigation", name="Main").get_by_role("link", name="Projects")
    expect(nav_projects).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/groups/user/ida$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("ida")
