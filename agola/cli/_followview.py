"""How a followed run is shown (``agola.cli._follow`` collects it).

* ``PipeView`` (a pipe, a file, several runs at once): one task at a time, in DAG order, its
  whole output then its status line with its duration; the other tasks' output is held back until
  their turn, so parallel tasks never interleave. Reused tasks (kept by a restart) are marked,
  not replayed.
* ``LiveView`` (one run on a terminal): a block redrawn in place, one line per task with a
  spinner, status and duration, the running tasks' last lines below them; a failed task's whole
  output is printed above the block and stays. Colour unless ``NO_COLOR`` is set.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

import attrs

from agola.cli._runs import duration, result_of

if TYPE_CHECKING:
    from agola.client import RunResponse

# Gets one line, or several joined by "\n" (no trailing newline).
Writer = Callable[[str], None]
# Statuses of tasks that never ran: they have no logs.
NO_LOGS = frozenset({"notstarted", "skipped", "cancelled"})
FINISHED = frozenset({"skipped", "cancelled", "stopped", "success", "failed"})


@attrs.define
class TaskView:
    """One task as the follower knows it: its status and the output read so far."""

    id: str
    name: str
    level: int = 0
    status: str = "notstarted"
    start_time: str | None = None
    end_time: str | None = None
    waiting_approval: bool = False
    approved: bool = False
    depends: list[str] = attrs.field(factory=list)  # names of the tasks it waits for
    reused: bool = False  # kept from the run a restart started from: not run again
    # Output read and not yet shown: each item one line, or several joined by "\n" (a chunk's).
    lines: list[str] = attrs.field(factory=list)
    reader_done: bool = False

    @property
    def started(self) -> bool:
        return self.reused or self.status not in NO_LOGS

    @property
    def done(self) -> bool:
        """Finished and its output read to the end."""
        return self.status in FINISHED and (self.reader_done or self.reused or self.status in NO_LOGS)

    def took(self) -> str:
        now = None if self.end_time else datetime.now(UTC)
        return duration(self.start_time, self.end_time, now)

    def outcome(self) -> str:
        """``success (3s)``, ``success (reused, not run again)``, ``skipped``..."""
        if self.reused:
            return f"{self.status} (reused, not run again)"
        took = self.took() if self.status not in NO_LOGS else ""
        return f"{self.status} ({took})" if took else self.status


def prefix_lines(prefix: str, text: str) -> str:
    """``prefix`` before each line of ``text`` (lines joined by ``\\n``)."""
    return prefix + text.replace("\n", "\n" + prefix) if prefix else text


def _ready(task: TaskView, tasks: dict[str, TaskView]) -> bool:
    """Every task it depends on has finished: it waits for an executor, not for them."""
    by_name = {t.name: t for t in tasks.values()}
    return all(by_name[d].status in FINISHED for d in task.depends if d in by_name)


def in_order(tasks: Iterable[TaskView]) -> list[TaskView]:
    return sorted(tasks, key=lambda t: (t.level, t.name))


def run_label(run: RunResponse) -> str:
    return f"run {run.name} #{run.counter} ({run.id})"


def run_ref(run: RunResponse) -> str:
    """How commands name the run: ``#N`` for a direct run, else its id."""
    from agola.cli._runs import group_of

    return f"#{run.counter}" if group_of(run) == "direct" else run.id


def summary(run: RunResponse) -> str:
    took = duration(run.start_time, run.end_time)
    label = f"run {run.name} #{run.counter} ({run.id}{', ' + took if took else ''})"
    return f"==> {label}: {run.phase}, result {result_of(run.phase, run.result)}"


def approval_hint(run: RunResponse, task: TaskView) -> str:
    return f"waiting for approval: agola run approve {run_ref(run)} {task.name}"


class PipeView:
    """Ordered output for a pipe or a file (see the module docstring)."""

    def __init__(self, write: Writer, prefix: Callable[[str], str]) -> None:
        self.write = write
        self.prefix = prefix
        self.tasks: dict[str, TaskView] = {}
        self.printed: set[str] = set()
        self.focus: TaskView | None = None
        self.shown = 0  # lines of the focused task already written
        self.phase = ""
        self.approvals: set[str] = set()
        self.waiting: frozenset[str] = frozenset()

    def update(self, run: RunResponse, tasks: dict[str, TaskView]) -> None:
        self.tasks = tasks
        if run.phase != self.phase and not run.finished:
            self.phase = run.phase
            self.write(f"==> {run_label(run)}: {run.phase}")
        self.pump()
        if self.focus is None:  # after the output of the tasks it waited for
            for t in in_order(tasks.values()):
                if t.waiting_approval and not t.approved and t.id not in self.approvals:
                    self.approvals.add(t.id)
                    self.write(f"==> {self.prefix(t.name)}{approval_hint(run, t)}")
        if self.focus is None and run.phase == "running":
            waiting = frozenset(t.name for t in tasks.values() if t.status == "notstarted" and not t.waiting_approval
                                and _ready(t, tasks))
            if waiting and waiting != self.waiting:
                self.write(f"==> waiting for {', '.join(sorted(waiting))} to start")
            self.waiting = waiting

    def line(self, task: TaskView) -> None:
        if self.focus is task:
            self.pump()

    def pump(self) -> None:
        """Write what can be written in order: the focused task's new lines, its status when it
        is done, then the next task's."""
        while True:
            if self.focus is None:
                ready = [t for t in in_order(self.tasks.values()) if t.id not in self.printed and t.started]
                if not ready:
                    return
                self.focus, self.shown = ready[0], 0
            task = self.focus
            self._write_lines(task, task.lines[self.shown:])
            # Written: not kept (a step printing 100 MB must not stay in memory).
            del task.lines[:]
            self.shown = 0
            if not task.done:
                return
            self.write(f"==> {self.prefix(task.name)}{task.outcome()}")
            self.printed.add(task.id)
            self.focus = None

    def _write_lines(self, task: TaskView, lines: list[str]) -> None:
        if lines:  # one write for all of them
            self.write(prefix_lines(self.prefix(task.name), "\n".join(lines)))

    def finish(self, run: RunResponse) -> None:
        self.pump()
        for t in in_order(self.tasks.values()):
            if t.id in self.printed:
                continue
            # A log that never ended (given up on): what there is, then the status.
            self._write_lines(t, t.lines[self.shown if t is self.focus else 0:])
            self.write(f"==> {self.prefix(t.name)}{t.outcome()}")
        for err in run.setup_errors:
            self.write(f"setup error: {err}")
        self.write(summary(run))

    def close(self) -> None:
        pass


_SGR = {"success": "32", "failed": "31", "stopped": "31", "running": "33", "waiting": "33", "dim": "2", "bold": "1"}


# Escape sequences (CSI with its parameters, OSC up to BEL/ST, two-character ones) and C0 controls.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f]")
_SGR_SEQUENCE = re.compile(r"\x1b\[[0-9;]*m")


def plain(line: str, keep_colors: bool = False) -> str:
    """A step's line made safe for the redrawn view: no cursor movement, carriage return or
    other control character (they would break the count of lines to redraw), tabs expanded;
    with ``keep_colors``, the step's own colours stay."""
    line = line.expandtabs(8)
    if not keep_colors:
        return _ESCAPES.sub("", line)
    parts = []
    for part in re.split(r"(\x1b\[[0-9;]*m)", line):
        parts.append(part if _SGR_SEQUENCE.fullmatch(part) else _ESCAPES.sub("", part))
    return "".join(parts) + ("\x1b[0m" if "\x1b[" in line else "")


def use_color(out: TextIO) -> bool:
    return "NO_COLOR" not in os.environ and out.isatty()


class LiveView:
    """The terminal view (see the module docstring). ``tick()`` redraws (the spinner turns)."""

    TAIL = 5  # lines of a running task's output under it

    def __init__(self, out: TextIO, color: bool) -> None:
        self.out = out
        self.color = color
        unicode = (getattr(out, "encoding", "") or "").lower().replace("-", "") in ("utf8", "utf8mb4")
        self.spinner = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏" if unicode else "|/-\\"
        self.marks = {"success": "✓", "failed": "✗", "stopped": "✗", "skipped": "-", "cancelled": "-"} if unicode \
            else {"success": "+", "failed": "x", "stopped": "x", "skipped": "-", "cancelled": "-"}
        self.frame = 0
        self.drawn = 0  # lines of the block on screen
        self.size = os.terminal_size((0, 0))  # the terminal's size when it was drawn
        self.run: RunResponse | None = None
        self.tasks: dict[str, TaskView] = {}
        self.kept: set[str] = set()
        self.out.write("\x1b[?25l")  # no blinking cursor over the spinner

    def _paint(self, text: str, what: str) -> str:
        code = _SGR.get(what)
        return f"\x1b[{code}m{text}\x1b[0m" if self.color and code else text

    def _erase(self) -> None:
        # After a resize the terminal may have rewrapped the old block: counting its lines could
        # erase what is above it, so it is left there and a new one drawn below.
        if self.drawn and shutil.get_terminal_size((100, 30)) == self.size:
            self.out.write(f"\x1b[{self.drawn}F\x1b[J")
        self.drawn = 0

    def _draw(self) -> None:
        self.size = shutil.get_terminal_size((100, 30))
        cols, rows = self.size
        lines = self._block(max(3, rows - 2))
        for segments in lines:
            self.out.write(self._fit(segments, cols - 1) + "\n")  # never wrap: the block is redrawn by its line count
        self.drawn = len(lines)
        self.out.flush()

    def _fit(self, segments: list[tuple[str, str]], width: int) -> str:
        """Painted segments cut to ``width`` visible characters."""
        text = ""
        for part, what in segments:
            part = part[: max(0, width)]
            width -= len(part)
            text += self._paint(part, what) if part else ""
        return text

    def _block(self, height: int) -> list[list[tuple[str, str]]]:
        run = self.run
        if run is None:
            return []
        now = None if run.end_time else datetime.now(UTC)
        took = duration(run.start_time, run.end_time, now)
        out = [[(f"{run_label(run)}: {run.phase}" + (f"  {took}" if took else ""), "bold")]]
        width = max((len(t.name) for t in self.tasks.values()), default=4)
        for t in in_order(self.tasks.values()):
            mark, what, state = self._state(run, t)
            took = t.took() if t.started and not t.reused else ""
            out.append([("  ", ""), (mark, what), (f" {t.name.ljust(width)}  ", ""), (state.ljust(9), what),
                        (f" {took}" if took else "", "")])
            if t.status == "running" and not t.reused:
                tail = "\n".join(t.lines[-self.TAIL:]).split("\n")[-self.TAIL:]
                out.extend([[("      " + plain(line), "dim")] for line in tail])
        return out[:height]

    def _state(self, run: RunResponse, t: TaskView) -> tuple[str, str, str]:
        if t.reused:
            return self.marks.get(t.status, "-"), "dim", f"{t.status} (reused, not run again)"
        if t.waiting_approval and not t.approved:
            return "?", "waiting", approval_hint(run, t)
        if t.status == "running":
            return self.spinner[self.frame % len(self.spinner)], "running", "running"
        if t.status == "notstarted":
            if run.finished:
                return ".", "dim", "not started"
            if _ready(t, self.tasks):
                return ".", "dim", "waiting to start"
            return ".", "dim", f"waiting for {', '.join(t.depends)}"
        return self.marks.get(t.status, "-"), t.status, t.status

    def _keep_failures(self, final: bool = False) -> list[str]:
        """The whole output of tasks that just failed: it stays on screen above the block (at
        the end, also of those whose log was given up on)."""
        kept: list[str] = []
        for t in in_order(self.tasks.values()):
            if t.id in self.kept or not (t.done or final) or t.reused or t.status not in ("failed", "stopped"):
                continue
            self.kept.add(t.id)
            kept.append(self._paint(f"--- {t.name}: {t.outcome()}", t.status))
            kept.extend(plain(line, keep_colors=self.color) for block in t.lines for line in block.split("\n"))
        return kept

    def _redraw(self, permanent: Sequence[str] = ()) -> None:
        self._erase()
        for line in permanent:
            self.out.write(line + "\n")
        self._draw()

    def update(self, run: RunResponse, tasks: dict[str, TaskView]) -> None:
        self.run, self.tasks = run, tasks
        self._redraw(self._keep_failures())

    def line(self, task: TaskView) -> None:
        pass  # the next tick shows it: a chatty step does not redraw per line

    def tick(self) -> None:
        self.frame += 1
        if self.run is not None:
            self._redraw()

    def finish(self, run: RunResponse) -> None:
        self.run = run
        kept = self._keep_failures(final=True)
        kept += [f"setup error: {err}" for err in run.setup_errors]
        self._redraw(kept)
        self.drawn = 0  # the final block stays
        self.out.write(summary(run) + "\n")

    def close(self) -> None:
        self.drawn = 0
        self.out.write("\x1b[?25h")
        self.out.flush()
