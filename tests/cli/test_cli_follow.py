"""Following runs as a person sees it, the CLI in a child process against every role (docker
executor): ordered output on a pipe (a task's lines together, its status after them, durations,
reused tasks marked), ``run restart --follow``, the live view on a pseudo-terminal (with and
without ``NO_COLOR``), and Ctrl-C, which leaves the run running and says how to get back to it.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from agola.cli.main import agola
from tests.client.stack import ADMIN, ALL, RoleStack

ROOT = Path(__file__).resolve().parents[2]

PIPELINE = """\
version: v0
runs:
  - name: run01
    tasks:
      - name: alpha
        runtime: {{containers: [{{image: {image}}}]}}
        steps:
          - {{type: run, name: count, command: 'for i in 1 2 3; do echo alpha-$i; sleep 0.3; done'}}
      - name: beta
        runtime: {{containers: [{{image: {image}}}]}}
        steps:
          - {{type: run, name: count, command: 'for i in 1 2 3; do echo beta-$i; sleep 0.3; done'}}
      - name: check
        runtime: {{containers: [{{image: {image}}}]}}
        depends: [alpha, beta]
        environment: {{MODE: {{from_variable: mode}}}}
        steps:
          - {{type: run, name: verify, command: 'echo checking $MODE; test "$MODE" != fail'}}
      - name: long
        runtime: {{containers: [{{image: {image}}}]}}
        when: {{branch: slow}}
        steps:
          - {{type: run, command: 'echo long-started; sleep 60'}}
"""


@pytest.fixture(scope="module")
def roles(tmp_path_factory: pytest.TempPathFactory, busybox_image: str) -> Iterator[RoleStack]:
    r = RoleStack(tmp_path_factory.mktemp("roles"), ALL,
                  {"executor": "  docker: {network: none}\n  activeTasksLimit: 3\n"})
    r.start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture(scope="module")
def env(roles: RoleStack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    def admin(*args: str) -> str:
        res = CliRunner().invoke(agola, ["-u", roles.url, "--token", ADMIN, *args])
        assert res.exit_code == 0, res.output
        return res.stdout

    admin("user", "create", "user01")
    token = admin("user", "token", "create", "user01", "t").strip()
    e = {k: v for k, v in os.environ.items() if not k.startswith("AGOLA_") and k != "NO_COLOR"}
    return {**e, "AGOLA_GATEWAY_URL": roles.url, "AGOLA_TOKEN": token, "PYTHONPATH": str(ROOT),
            "XDG_CONFIG_HOME": str(tmp_path_factory.mktemp("xdg"))}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, busybox_image: str) -> Path:
    path = tmp_path_factory.mktemp("work")
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    (path / ".agola").mkdir()
    (path / ".agola" / "config.yml").write_text(PIPELINE.format(image=busybox_image))
    return path


def agola_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "agola.cli.main", *args]


def on_pipe(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(agola_cmd(*args), env=env, capture_output=True, text=True, timeout=120)


def on_pty(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run in a 120x40 pseudo-terminal; the exit status and everything it wrote."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(agola_cmd(*args), env={**env, "TERM": "xterm"}, stdin=slave, stdout=slave,
                            stderr=slave, close_fds=True)
    os.close(slave)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 120)
            assert ready, "no output for 120 s"
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        return proc.wait(60), b"".join(chunks).decode(errors="replace")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()


def block_of(out: str, task: str) -> list[int]:
    """Line numbers of a task's lines (its output and its status line)."""
    return [i for i, line in enumerate(out.splitlines()) if line.startswith(f"[{task}] ") or
            line.startswith(f"==> [{task}] ")]


def test_pipe_output_is_ordered_and_restart_marks_reused_tasks(env: dict[str, str], repo: Path) -> None:
    res = on_pipe(env, "directrun", "start", "-C", str(repo), "--var", "mode=fail", "--follow")
    assert res.returncode == 3, res.stdout + res.stderr
    out = res.stdout
    lines = out.splitlines()
    for task in ("alpha", "beta", "check"):
        found = block_of(out, task)
        # One block per task, however the parallel tasks interleaved, its status line last.
        assert found == list(range(found[0], found[0] + len(found))), out
        assert re.fullmatch(rf"==> \[{task}\] (success|failed) \(\d+s\)", lines[found[-1]]), out
    assert lines.index("[alpha] alpha-1") < lines.index("[alpha] alpha-3") < lines.index(
        next(line for line in lines if line.startswith("==> [alpha] success")))
    assert re.search(r"\[check\] --- step 0: failed \(exit status 1\) in \d+s", out)
    assert "[check] checking fail" in out
    assert block_of(out, "check")[0] > max(block_of(out, "alpha") + block_of(out, "beta"))
    assert "==> [long] skipped" in out
    assert re.search(r"==> run run01 #1 \([\w-]+, \d+s\): finished, result failed$", out.rstrip())

    # Restart from the failed task, following: alpha and beta are reused, not replayed.
    again = on_pipe(env, "run", "restart", "#1", "--follow")
    assert again.returncode == 3, again.stdout + again.stderr
    assert again.stdout.startswith("run #1 restarted as run #2 (")
    assert "==> [alpha] success (reused, not run again)" in again.stdout
    assert "==> [beta] success (reused, not run again)" in again.stdout
    assert "alpha-1" not in again.stdout and "[check] checking fail" in again.stdout
    assert again.stdout.rstrip().endswith("finished, result failed")
    logs = on_pipe(env, "run", "logs", "#2")  # the same, without following
    assert "==> [alpha] success (reused, not run again)" in logs.stdout and "alpha-1" not in logs.stdout
    assert re.search(r"\[check\] checking fail\n.*\n==> \[check\] failed \(\d+s\)\n", logs.stdout), logs.stdout


def test_live_view_on_a_terminal(env: dict[str, str], repo: Path) -> None:
    code, out = on_pty({**env, "NO_COLOR": "1"}, "directrun", "start", "-C", str(repo), "--var", "mode=fail", "-f")
    assert code == 3, out
    assert "\x1b[?25l" in out and re.search(r"\x1b\[\d+F\x1b\[J", out)  # a block redrawn in place
    assert not re.search(r"\x1b\[\d+m", out), "NO_COLOR: no colours"
    final = out[out.rindex("\x1b[J"):]
    # The failed task's whole output is printed once, above the block, and stays there.
    kept = out[out.index("--- check: failed ("):]
    assert out.count("--- check: failed (") == 1 and "\x1b[J" not in kept[:kept.index("checking fail")]
    assert re.search(r"✓ alpha +success +\d+s", final) and re.search(r"✗ check +failed +\d+s", final)
    assert "- long " in final and "skipped" in final
    assert final.rstrip().endswith("result failed\r\n".rstrip()) or "finished, result failed" in final
    assert "\x1b[?25h" in out  # the cursor is given back

    # Without NO_COLOR the statuses are coloured; a finished run is shown at once.
    newest = json.loads(on_pipe(env, "run", "list", "--json").stdout)[0]["counter"]
    code, out = on_pty(env, "run", "logs", f"#{newest}", "-f")
    assert code == 3, out
    assert "\x1b[32m" in out and "\x1b[31m" in out


def test_ctrl_c_leaves_the_run_running_and_says_how_to_get_back(env: dict[str, str], repo: Path) -> None:
    proc = subprocess.Popen(agola_cmd("directrun", "start", "-C", str(repo), "--branch", "slow", "--var", "mode=ok",
                                      "-f"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        seen = b""
        while b"\n[long] long-started\n" not in seen:  # the step runs (for 60 s)
            ready, _, _ = select.select([proc.stdout], [], [], 120)
            assert ready, seen
            chunk = os.read(proc.stdout.fileno(), 65536)
            assert chunk, seen
            seen += chunk
        proc.send_signal(signal.SIGINT)
        _, raw_err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = raw_err.decode()
    assert proc.returncode == 130, err
    counter = re.search(r"Stopped following run run01 #(\d+) \([\w-]+\): it keeps running on the gateway\.", err)
    assert counter, err
    n = counter.group(1)
    assert f"  follow it again: agola run logs #{n} -f\n" in err and f"  stop it:         agola run stop #{n}\n" in err
    assert "Error" not in err and "Traceback" not in err
    # Following one step's log: the same kind of goodbye.
    step = subprocess.Popen(agola_cmd("run", "logs", f"#{n}", "-t", "long", "--step", "0", "-f"), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert step.stdout is not None
        assert select.select([step.stdout], [], [], 60)[0] and step.stdout.readline() == b"long-started\n"
        step.send_signal(signal.SIGINT)
        _, step_err = step.communicate(timeout=60)
    finally:
        if step.poll() is None:
            step.kill()
    assert step.returncode == 130
    assert step_err.decode() == (f"Stopped following the log of step 0 of task long: the run keeps running.\n"
                                 f"  follow it again: agola run logs #{n} -t long --step 0 -f\n")
    shown = on_pipe(env, "run", "show", f"#{n}", "--json")
    assert json.loads(shown.stdout)["phase"] == "running", shown.stdout + err
    stopped = on_pipe(env, "run", "stop", f"#{n}")
    assert stopped.returncode == 0, stopped.stderr
