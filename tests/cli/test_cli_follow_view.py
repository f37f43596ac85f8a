"""The two views of a followed run, fed by hand (no server): the order a pipe gets whatever order
the logs arrive in, and a terminal view that a step's own control characters cannot break."""

from __future__ import annotations

import io
import re

import pytest

from agola.cli._followview import LiveView, PipeView, TaskView
from agola.client import RunResponse


def _run(phase: str, result: str = "unknown") -> RunResponse:
    return RunResponse(id="r1", counter=4, name="run01", phase=phase, result=result,
                       annotations={"run_type": "user"}, start_time="2026-01-01T10:00:00Z",
                       end_time="2026-01-01T10:00:07Z" if phase == "finished" else None)


def _tasks() -> dict[str, TaskView]:
    a = TaskView("ida", "alpha", 0, "running", start_time="2026-01-01T10:00:01Z")
    b = TaskView("idb", "beta", 0, "running", start_time="2026-01-01T10:00:01Z")
    c = TaskView("idc", "check", 1, depends=["alpha", "beta"])
    return {t.id: t for t in (a, b, c)}


def _finish(task: TaskView, status: str) -> None:
    task.status, task.end_time, task.reader_done = status, "2026-01-01T10:00:04Z", True


def test_pipe_view_orders_tasks_whatever_order_their_lines_come_in() -> None:
    out: list[str] = []
    view = PipeView(out.append, lambda name: f"[{name}] ")
    tasks = _tasks()
    alpha, beta, check = tasks["ida"], tasks["idb"], tasks["idc"]
    view.update(_run("running"), tasks)
    for line in ("b1", "b2"):  # beta speaks first: held back, alpha comes first in DAG order
        beta.lines.append(line)
        view.line(beta)
    alpha.lines.append("a1")
    view.line(alpha)
    assert out[-1] == "[alpha] a1" and not any("beta" in line for line in out)
    _finish(beta, "success")
    view.update(_run("running"), tasks)
    assert not any("beta" in line for line in out)
    _finish(alpha, "failed")
    check.status = "skipped"
    view.update(_run("finished", "failed"), tasks)
    view.finish(_run("finished", "failed"))
    # A write may carry several lines (one write per batch of a step's output): the text counts.
    assert "\n".join(out).split("\n") == [
        "==> run run01 #4 (r1): running",
        "[alpha] a1",
        "==> [alpha] failed (3s)",
        "[beta] b1",
        "[beta] b2",
        "==> [beta] success (3s)",
        "==> [check] skipped",
        "==> run run01 #4 (r1, 7s): finished, result failed",
    ]


def test_live_view_redraws_in_place_and_keeps_a_failure() -> None:
    screen = io.StringIO()
    view = LiveView(screen, color=False)
    tasks = _tasks()
    alpha = tasks["ida"]
    # A step that moves the cursor, returns the carriage and rings the bell.
    alpha.lines += ["compiling\t[1/2]", "\x1b[1A\r\x1b[2Kprogress 50%\x07", "\x1b[31mboom\x1b[0m"]
    view.update(_run("running"), tasks)
    view.tick()
    text = screen.getvalue()
    assert "\x1b[1A" not in text and "\r" not in text and "\x07" not in text and "\x1b[31m" not in text
    drawn = text[text.rindex("\x1b[J") + 3:].splitlines()
    redraw = int(re.findall(r"\x1b\[(\d+)F", text)[-1])
    assert redraw == len(drawn)  # the whole block, and nothing else, is redrawn
    assert drawn[1].split()[1:3] == ["alpha", "running"] and "      compiling       [1/2]" in drawn
    assert drawn[-1].split()[1:] == ["check", "waiting", "for", "alpha,", "beta"]

    _finish(alpha, "failed")
    view.update(_run("running"), tasks)
    view.finish(_run("finished", "failed"))
    view.close()
    text = screen.getvalue()
    kept = text.index("--- alpha: failed (3s)")
    assert text.index("boom", kept) < text.rindex("==> run run01 #4 (r1, 7s): finished, result failed")
    assert text.count("--- alpha: failed") == 1 and text.endswith("\x1b[?25h")


def test_pipe_view_shows_logs_given_up_on_at_the_end() -> None:
    out: list[str] = []
    view = PipeView(out.append, lambda name: f"[{name}] ")
    tasks = _tasks()
    alpha, beta, check = tasks["ida"], tasks["idb"], tasks["idc"]
    alpha.lines.append("a1")
    beta.lines.append("b1")
    view.update(_run("running"), tasks)
    # The run ended but neither log reached its end (an executor lost): nothing is dropped.
    for task in (alpha, beta):
        task.status, task.end_time = "failed", "2026-01-01T10:00:04Z"
    check.status = "skipped"
    view.update(_run("finished", "failed"), tasks)
    view.finish(_run("finished", "failed"))
    assert out[1:] == ["[alpha] a1", "==> [alpha] failed (3s)", "[beta] b1", "==> [beta] failed (3s)",
                       "==> [check] skipped", "==> run run01 #4 (r1, 7s): finished, result failed"]


def test_live_view_after_a_resize_draws_below_without_erasing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("LINES", "30")
    screen = io.StringIO()
    view = LiveView(screen, color=False)
    view.update(_run("running"), _tasks())
    view.tick()
    erases = screen.getvalue().count("\x1b[J")
    monkeypatch.setenv("COLUMNS", "40")  # the old block may have been rewrapped: not counted over
    view.tick()
    assert screen.getvalue().count("\x1b[J") == erases
    view.tick()  # same size again: redrawn in place
    assert screen.getvalue().count("\x1b[J") == erases + 1
    assert all(len(line) < 40 for line in screen.getvalue().rsplit("\x1b[J", 1)[1].splitlines())
