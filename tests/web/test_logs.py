"""A 100 MB step log in headless Chromium: the task page shows its tail at once (the last lines,
numbered from the start of the log) and keeps a bounded number of lines in the page, earlier
ranges load on demand, the tab stays responsive; a step opened from the keyboard."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.web.conftest import Web
from tests.web.test_browser import LIVE, new_page, sign_in

LINE = "x" * 99  # 100 bytes a line with its newline
LINES = 1_000_000  # 100 MB (under the executor's default maxLogSize of 100 MiB)
BIG_RUN = f"""version: v0
runs:
  - name: big
    tasks:
      - name: print
        runtime: {{containers: [{{image: busybox}}]}}
        steps:
          - run: {{name: a hundred megabytes, command: "yes {LINE} | head -c {LINES * 100}; echo THE END"}}
          - run: {{name: small, command: echo small}}
"""


def test_a_100mb_log_opens_at_its_tail_with_bounded_lines(web: Web, browser: Any) -> None:
    token = web.user("jo")
    run_id = web.direct_run(token, web.repo("big", BIG_RUN), "main")
    page = new_page(browser, web)
    sign_in(page, token)
    page.goto(f"/runs/{run_id}")
    expect(page.locator("#run-live h1 [data-state]")).to_have_text("success", timeout=LIVE * 2)
    page.locator('a.node[data-task="print"]').click()
    expect(page.locator("details.step[open] .log")).to_contain_text("small")  # the last step opens

    # Open the big step from the keyboard: its summary takes the focus, Enter toggles it.
    big = page.locator('details.step[data-step="0"]')
    big.locator("summary").focus()
    page.keyboard.press("Enter")
    expect(big).to_have_attribute("open", "")
    log = big.locator(".log")
    expect(log.locator(".ln").last).to_contain_text("THE END", timeout=LIVE)
    expect(log.locator(".ln").last.locator(".lno")).to_have_text(str(LINES + 1))
    shown = log.locator(".ln").count()
    assert 100 < shown < 5000, shown  # a 256 KiB tail, not a million lines
    assert page.evaluate("1 + 1") == 2  # the tab answers

    big.get_by_role("button", name="Load earlier lines").click()
    expect(log.locator(".ln")).not_to_have_count(shown)
    more = log.locator(".ln").count()
    assert shown < more < 3 * shown, more
    first = int(log.locator(".ln").first.locator(".lno").inner_text())
    assert first == LINES + 2 - more, (first, more)  # numbered from the start of the log
    heap = page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : 0")
    assert heap < 200 * 1024 * 1024, heap
