"""Secret masking seen from outside: a direct run given ``--secret`` values whose steps print them
(whole, split across two writes, a multi-line value line by line) shows ``***`` in the followed
output, in ``agola run logs`` once the logs are archived and in every stored log file, while the
public API never returns the values. Every role in one process, the host driver (fast)."""

from __future__ import annotations

import json
import logging
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from agola.cli.main import agola
from tests.client.stack import ADMIN, ALL, RoleStack
from tests.support.waiting import wait_for_sync

TOKEN = "tok-5f3a9c2e71"
KEY = "-----BEGIN TEST KEY-----\nc2VjcmV0LWtleS1ib2R5\n-----END TEST KEY-----"
SECRETS = (TOKEN, "c2VjcmV0LWtleS1ib2R5", "BEGIN TEST KEY")

PIPELINE = """\
version: v0
runs:
  - name: masked
    tasks:
      - name: t
        runtime: {containers: [{image: busybox}]}
        environment:
          TOKEN: {from_variable: token}
          KEY: {from_variable: key}
          PIN: {from_variable: pin}
          PLAIN: {from_variable: plain}
        steps:
          - run: echo "token=$TOKEN plain=$PLAIN pin=$PIN"
          - run:
              name: split
              command: |
                printf 'split=%s' "$(printf %s "$TOKEN" | cut -c1-6)"
                sleep 0.3
                printf '%s|\\n' "$(printf %s "$TOKEN" | cut -c7-)"
          - run: printf 'key:\\n%s\\nend\\nbody %s\\n' "$KEY" "$(echo "$KEY" | sed -n 2p)"
"""


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[RoleStack]:
    r = RoleStack(tmp_path, ALL, {"executor": "  driver: {type: host}\n"})
    r.start()
    try:
        yield r
    finally:
        r.stop()


def _repo(dest: Path) -> Path:
    (dest / ".agola").mkdir(parents=True)
    (dest / ".agola" / "config.yml").write_text(PIPELINE)
    subprocess.run(["git", "init", "-q", str(dest)], check=True)
    return dest


def _no_secret(text: str) -> bool:
    return not any(s in text for s in SECRETS)


def test_secret_values_are_masked_in_followed_archived_and_stored_logs(
    stack: RoleStack, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="agola")

    def cli(*args: str, token: str, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(agola, ["--gateway-url", stack.url, "--token", token, *args], env=env)

    assert cli("user", "create", "user01", token=ADMIN).exit_code == 0
    token = cli("user", "token", "create", "user01", "t", token=ADMIN).stdout.strip()
    repo = _repo(tmp_path / "repo")

    run = cli("directrun", "start", "-C", str(repo), "--follow", "--var", "plain=visible-value",
              "--secret", f"token={TOKEN}", "--secret", "key", "--secret", "pin=abc", token=token,
              env={"key": KEY})  # --secret NAME: the value of $NAME
    assert run.exit_code == 0, run.output
    followed = run.stdout
    assert "token=*** plain=visible-value pin=abc" in followed  # under 4 characters: not masked
    assert "split=***|" in followed
    assert "key:\n***\nend\nbody ***\n" in followed.replace("[t] ", "")  # whole, and line by line
    assert _no_secret(followed), followed

    shown = json.loads(cli("run", "show", "1", "--json", token=token).stdout)
    [task] = shown["tasks"].values()

    def archived() -> bool:
        return all(s["log_archived"] for s in _get(stack, token, f"/runs/{shown['id']}/tasks/{task['id']}")["steps"])

    wait_for_sync(archived, 30, 0.1, "step logs archived by the runservice")
    logs = "".join(cli("run", "logs", "1", "-t", "t", "--step", str(i), token=token).stdout for i in range(3))
    assert "token=***" in logs and "split=***|" in logs and logs.count("***") == 4, logs
    assert _no_secret(logs), logs

    data = tmp_path / "data"
    stored = [p for p in data.rglob("*.log") if p.is_file()]
    assert any("runservice" in str(p) for p in stored) and any("executor" in str(p) for p in stored), stored
    for path in stored:
        assert _no_secret(path.read_text(errors="replace")), path

    api = json.dumps([_get(stack, token, f"/runs/{shown['id']}"),
                      _get(stack, token, f"/runs/{shown['id']}/tasks/{task['id']}")])
    assert _no_secret(api), api
    assert _no_secret("\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records))


def _get(stack: RoleStack, token: str, path: str) -> dict[str, Any]:
    req = urllib.request.Request(f"{stack.url}/api/v1alpha{path}", headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        body: dict[str, Any] = json.loads(resp.read())
        return body
