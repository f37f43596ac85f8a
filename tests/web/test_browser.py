"""The web UI in headless Chromium against a whole agola: sign in, a direct run turning from
running to success without a reload, a step's log lines arriving live, the XSS line shown as
text, an approval, a restart from the failed tasks, a 403 for another user, sign-out, CSRF and
CORS. Screenshots of the main pages go to docs/web/."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from playwright.sync_api import BrowserContext, Cookie, Page, expect

from tests.web.conftest import DESKTOP, PHONE, SCREENSHOTS, Web

if TYPE_CHECKING:  # the type of add_cookies' argument is not exported by playwright.sync_api
    from playwright._impl._api_structures import SetCookieParam

LIVE = 60_000  # ms: a run's state change, seen by the page
XSS = "<script>alert(1)</script>"

SLOW_RUN = r"""version: v0
runs:
  - name: web
    tasks:
      - name: build
        runtime: {containers: [{image: busybox}]}
        steps:
          - run:
              name: "print <b>things</b>"
              command: |
                echo '<script>alert(1)</script>'
                printf '\033[32mgreen\033[0m text\n'
                i=1; while [ $i -le 15 ]; do echo "line $i"; i=$((i+1)); sleep 0.4; done
      - name: test
        runtime: {containers: [{image: busybox}]}
        depends: [build]
        steps:
          - run: echo tested
      - name: deploy
        runtime: {containers: [{image: busybox}]}
        approval: true
        depends: [test]
        steps:
          - run: echo deployed
"""



def as_param(cookie: Cookie) -> SetCookieParam:
    """A cookie read from a browser context, in the shape a context accepts."""
    param: SetCookieParam = {"name": cookie["name"], "value": cookie["value"], "domain": cookie["domain"],
                             "path": cookie["path"], "httpOnly": cookie["httpOnly"], "secure": cookie["secure"],
                             "sameSite": cookie["sameSite"]}
    return param


def share_session(src: BrowserContext, dst: BrowserContext) -> None:
    """Sign ``dst`` in as ``src`` is (a second tab or device of the same user)."""
    dst.add_cookies([as_param(c) for c in src.cookies()])

def flaky_run(marker: str) -> str:
    return f"""version: v0
runs:
  - name: flaky
    tasks:
      - name: check
        runtime: {{containers: [{{image: busybox}}]}}
        steps:
          - run: {{name: the marker exists, command: "echo checking; test -f {marker}"}}
"""


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def new_page(browser: Any, web: Web, viewport: dict[str, int] = DESKTOP) -> Page:
    context = browser.new_context(base_url=web.url, viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(20_000)
    dialogs: list[str] = []

    def on_dialog(d: Any) -> None:
        dialogs.append(d.message)
        # Confirmations are accepted; any other dialog (an alert from injected script) fails below.
        d.accept() if d.type == "confirm" else d.dismiss()

    page.on("dialog", on_dialog)
    page.dialogs = dialogs
    return page


def sign_in(page: Page, token: str) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next=%2F$"))
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", name="Recent runs")).to_be_visible()
    assert token not in page.url


def test_a_direct_run_live_logs_approval_and_success_without_reload(web: Web, browser: Any) -> None:
    alice = web.user("alice")
    page = new_page(browser, web)
    page.goto("/login")
    shot(page, "login")
    sign_in(page, alice)
    expect(page.get_by_text("No runs yet")).to_be_visible()
    page.evaluate("window.notReloaded = true")

    run_id = web.direct_run(alice, web.repo("app", SLOW_RUN), "main")
    row = page.locator(f'tr[data-run-id="{run_id}"]')
    expect(row.locator("[data-state]")).to_have_text("running", timeout=LIVE)  # from the run events stream
    assert page.evaluate("window.notReloaded") is True

    # The step's lines arrive while it runs; markup in its name and output is text.
    task = new_page(browser, web)
    share_session(page.context, task.context)
    task.goto(f"/runs/{run_id}")
    task.locator('a.node[data-task="build"]').click()
    log = task.locator("details.step[open] .log")
    expect(log).to_contain_text("line 3", timeout=LIVE)
    expect(task.locator("details.step[open] [data-phase]")).to_have_attribute("data-phase", "running")
    expect(log).to_contain_text("line 15", timeout=LIVE)
    expect(task.locator(".step-name").nth(1)).to_have_text("print <b>things</b>")
    expect(log.locator(".ln").first.locator(".lt")).to_have_text(XSS)
    expect(log.locator(".fg2")).to_have_text("green")
    expect(task.locator("#L0-1 .lno")).to_have_attribute("href", "#L0-1")
    assert task.dialogs == []  # type: ignore[attr-defined]
    expect(task.locator("details.step[open] .exit")).to_have_text("exit 0", timeout=LIVE)
    shot(task, "task")

    # deploy waits for an approval: approve it with a confirmation; the run ends in success.
    run = task
    run.goto(f"/runs/{run_id}")
    expect(run.locator('a.node[data-task="deploy"]')).to_have_class(re.compile("st-waiting"), timeout=LIVE)
    shot(run, "run-waiting")
    run.locator('a.node[data-task="deploy"]').click()
    run.get_by_role("button", name="Approve").click()
    assert any("Approve task deploy" in m for m in run.dialogs)  # type: ignore[attr-defined]
    run.goto(f"/runs/{run_id}")
    run.evaluate("window.notReloaded = true")
    expect(run.locator("#run-live h1 [data-state]")).to_have_text("success", timeout=LIVE)
    assert run.evaluate("window.notReloaded") is True
    shot(run, "run")

    expect(row.locator("[data-state]")).to_have_text("success", timeout=LIVE)
    assert page.evaluate("window.notReloaded") is True
    shot(page, "home")

    phone = new_page(browser, web, PHONE)
    share_session(page.context, phone.context)
    phone.goto(f"/runs/{run_id}")
    expect(phone.locator("#run-live h1 [data-state]")).to_have_text("success")
    shot(phone, "run-phone")
    build_href = run.locator('a.node[data-task="build"]').get_attribute("href")
    assert build_href is not None
    phone.goto(f"/runs/{run_id}/tasks/" + build_href.rsplit("/", 1)[1])
    expect(phone.locator("details.step[open] .log")).to_contain_text("line 15")
    shot(phone, "task-phone")


def test_restart_from_failed_tasks(web: Web, browser: Any) -> None:
    bea = web.user("bea")
    marker = web.tmp / "marker"
    run_id = web.direct_run(bea, web.repo("flaky", flaky_run(str(marker))), "flaky")
    page = new_page(browser, web)
    sign_in(page, bea)
    page.goto(f"/runs/{run_id}")
    expect(page.locator("#run-live h1 [data-state]")).to_have_text("failed", timeout=LIVE)
    page.locator('a.node[data-task="check"]').click()
    failing = page.locator("details.step[open]")  # the failing step is the one open
    expect(failing.locator(".exit")).to_have_text("exit 1")
    expect(failing.locator(".log")).to_contain_text("checking")
    page.go_back()

    marker.write_text("now it exists\n")
    page.get_by_role("button", name="Restart from failed").click()
    expect(page).not_to_have_url(re.compile(run_id))
    expect(page.locator("#run-live h1 [data-state]")).to_have_text("success", timeout=LIVE)
    assert any("failed tasks" in m for m in page.dialogs)  # type: ignore[attr-defined]

    page.goto("/runs")
    expect(page.locator("tbody tr")).to_have_count(2)
    page.get_by_label("Result").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr [data-state]")).to_have_text("failed")
    expect(page.locator("tbody tr [data-state]")).to_have_css("background-color", "rgb(211, 58, 44)")  # red
    shot(page, "runs")


def test_another_user_gets_403_and_sign_out_ends_the_session(web: Web, browser: Any) -> None:
    owner = web.user("carol")
    run_id = web.direct_run(owner, web.repo("private", flaky_run("/nonexistent")), "main")
    page = new_page(browser, web)
    sign_in(page, web.user("dave"))
    web.restart()  # sessions are kept in the gateway's data dir: still signed in
    page.goto("/")
    expect(page.get_by_role("heading", name="Recent runs")).to_be_visible()
    response = page.goto(f"/runs/{run_id}")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading")).to_contain_text("403")
    expect(page.locator("body")).not_to_contain_text("flaky")
    shot(page, "forbidden")
    log = page.request.get(f"/runs/{run_id}/tasks/x/log?step=0&tail=100")
    assert log.status == 403 and "checking" not in log.text()

    # A form post without the session's CSRF token is refused.
    forged = page.request.post(f"/runs/{run_id}/actions", form={"action": "restart", "csrf_token": "guess"})
    assert forged.status == 403
    headers = page.request.get("/").headers
    assert "script-src 'self'" in headers["content-security-policy"] and "unsafe-inline" not in headers[
        "content-security-policy"]

    cookies = page.context.cookies()
    [session] = [c for c in cookies if "session" in c["name"]]
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile("/login$"))
    page.context.add_cookies([as_param(session)])  # a copy of the old cookie is worthless now
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    web.restart()  # and stays worthless after a restart
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next="))


def test_cors_preflight_from_a_listed_origin_only(web: Web, browser: Any) -> None:
    token = web.user("erin")
    page = new_page(browser, web)
    fetch = """async ([url, token]) => {
        try {
            const r = await fetch(url + '/api/v1alpha/user', {headers: {Authorization: 'token ' + token}});
            return String(r.status) + ' ' + (await r.json()).username;
        } catch (e) { return 'blocked'; }  // the browser hides the answer
    }"""
    for origin, expected in ((f"http://127.0.0.1:{web.other_origin_port}", "200 erin"),
                             (f"http://localhost:{web.other_origin_port}", "blocked")):
        page.goto(f"{origin}/")
        assert page.evaluate(fetch, [web.url, token]) == expected, origin
    pre = page.request.fetch(f"{web.url}/api/v1alpha/user", method="OPTIONS", headers={
        "Origin": f"http://127.0.0.1:{web.other_origin_port}", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert pre.status == 204
    assert pre.headers["access-control-allow-origin"] == f"http://127.0.0.1:{web.other_origin_port}"
    assert "Authorization" in pre.headers["access-control-allow-headers"]
    unlisted = page.request.fetch(f"{web.url}/api/v1alpha/user", method="OPTIONS", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in unlisted.headers
