"""``agola maintenance``, ``agola export`` and ``agola import`` against a real control plane (its
own: maintenance mode would disturb the shared one): a backup and restore of the configstore as an
admin would type it, and the failures that must leave nothing half done."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from click.testing import CliRunner, Result

from agola.cli.main import agola
from agola.cli.maintenance import Progress
from tests.client.stack import ADMIN, RoleStack


def cli(stack: RoleStack, token: str, *args: str) -> Result:
    return CliRunner().invoke(agola, ["--gateway-url", stack.url, "--token", token, *args])


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def test_backup_and_restore_of_the_configstore(tmp_path: Path) -> None:
    stack = RoleStack(tmp_path / "stack")
    stack.start()
    try:
        _scenario(stack, tmp_path)
    finally:
        stack.stop()


def _scenario(stack: RoleStack, tmp_path: Path) -> None:
    ok(cli(stack, ADMIN, "user", "create", "alice"))
    token = ok(cli(stack, ADMIN, "user", "token", "create", "alice", "t1")).stdout.strip()

    status = ok(cli(stack, ADMIN, "maintenance", "status", "configstore")).stdout.splitlines()
    assert status[0] == "configstore: requested normal, current normal"
    assert status[1].split() == ["INSTANCE", "HOST", "PID", "MODE"] and status[2].split()[-1] == "normal"

    # Not an admin: refused, and no file (nor a partial one) left behind.
    backup = tmp_path / "cs.export"
    denied = cli(stack, token, "export", "configstore", "-o", str(backup))
    assert denied.exit_code == 1 and denied.output == "Error: only an administrator can do this\n"
    assert list(tmp_path.glob("cs.export*")) == []

    nowhere = cli(stack, ADMIN, "export", "configstore", "-o", str(tmp_path / "missing" / "cs.export"))
    assert nowhere.output == f"Error: cannot write {tmp_path}/missing/cs.export.partial: No such file or directory\n"
    out = ok(cli(stack, ADMIN, "export", "configstore", "-o", str(backup))).stdout
    assert re.fullmatch(rf"configstore exported to {re.escape(str(backup))}: \d+ B in \d+\.\ds\n", out), out
    assert list(tmp_path.glob("cs.export*")) == [backup]
    assert backup.stat().st_mode & 0o777 == 0o600  # it holds secret values
    ok(cli(stack, ADMIN, "user", "create", "bob"))

    refused = cli(stack, ADMIN, "import", "configstore", "-i", str(backup))
    assert refused.output == "Error: configstore is not in maintenance mode: enable it first\n"
    assert ok(cli(stack, ADMIN, "maintenance", "enable", "configstore")).stdout == \
        "configstore is in maintenance mode (1 instance)\n"
    twice = cli(stack, ADMIN, "maintenance", "enable", "configstore")
    assert twice.exit_code == 1 and "maintenance mode already enabled" in twice.output
    shown = json.loads(ok(cli(stack, ADMIN, "maintenance", "status", "configstore", "--json")).stdout)
    assert shown["requested_status"] and shown["current_status"] and shown["instances"][0]["current_status"]

    imported = ok(cli(stack, ADMIN, "import", "configstore", "-i", str(backup))).stdout
    assert re.fullmatch(r"configstore: 2 objects imported from .*cs\.export \(\d+ B in \d+\.\ds\)\n", imported)
    ok(cli(stack, ADMIN, "maintenance", "disable", "configstore"))
    assert [u["username"] for u in json.loads(ok(cli(stack, ADMIN, "user", "list", "--json")).stdout)] == ["alice"]
    assert "Username:" in ok(cli(stack, token, "user", "show")).output  # the restored token works
    unknown = cli(stack, ADMIN, "maintenance", "status", "gitserver")
    assert unknown.exit_code == 2 and "'gitserver' is not one of 'configstore', 'runservice'" in unknown.output


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_only() -> None:
    term, pipe = _Terminal(), io.StringIO()
    for out in (term, pipe):
        p = Progress("exported", total=4096, out=out)
        p.add(2048)
        p.finish()
    assert re.fullmatch(r"\rexported 2\.0 KiB of 4\.0 KiB \(50%\) in \d+\.\ds\r\x1b\[K", term.getvalue())
    assert pipe.getvalue() == ""
