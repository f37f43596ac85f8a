"""Login profiles against the real control plane: ``agola login`` saves a gateway URL and a token
(0600 file in a 0700 directory under ``$XDG_CONFIG_HOME``), the commands then need no flags,
several named profiles with a current one, flags and environment variables still win, a
profile's token never goes to another gateway URL, ``whoami``, ``logout``.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import yaml
from click.testing import CliRunner, Result

from agola.cli.main import agola
from tests.client.stack import ADMIN, RoleStack
from tests.forges.conftest import follow_authorize
from tests.forges.test_remote_login import call
from tests.support.forge import GiteaEmulator


def cli(*args: str, input: str | None = None, env: Mapping[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(agola, list(args), input=input, env=env)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def _token(stack: RoleStack, name: str) -> str:
    ok(cli("-u", stack.url, "--token", ADMIN, "user", "create", name))
    return ok(cli("-u", stack.url, "--token", ADMIN, "user", "token", "create", name, "t")).stdout.strip()


def test_login_profiles_whoami_logout(control_plane: RoleStack, private_config_home: Path) -> None:
    url = control_plane.url
    tok1, tok2 = _token(control_plane, "user01"), _token(control_plane, "user02")
    path = private_config_home / "agola" / "config.yml"

    refused = cli("login", "-u", url, "--token", "not-a-token")
    assert refused.exit_code == 1 and refused.output == f"Error: the gateway at {url} refused the token\n"
    assert not path.exists()

    first = ok(cli("login", "-u", url, "--token", tok1))
    assert first.output == f"logged in to {url} as user01 (profile default, saved in {path})\n"
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    saved = yaml.safe_load(path.read_text())
    assert saved == {"current": "default", "profiles": {"default": {"gateway_url": url, "token": tok1}}}

    # A new shell: no flags, no environment.
    user_id = json.loads(ok(cli("user", "show", "--json")).stdout)["id"]
    assert ok(cli("whoami")).output.splitlines() == [
        f"User:    user01 (id {user_id})",
        f"Gateway: {url}",
        "Profile: default",
    ]
    assert ok(cli("run", "list")).output.startswith("#  GROUP")

    # A second profile, its token typed at the prompt (not echoed), becomes current.
    second = ok(cli("--profile", "second", "login", "-u", url, input=tok2 + "\n"))
    assert tok2 not in second.output and "as user02 (profile second" in second.output
    assert "the current profile was default: agola profile use default switches back" in second.stdout
    assert "User:    user02" in ok(cli("whoami")).output
    assert "User:    user01" in ok(cli("--profile", "default", "whoami")).output
    assert "User:    user01" in ok(cli("whoami", env={"AGOLA_PROFILE": "default"})).output
    listed = ok(cli("profile", "list")).output.splitlines()
    assert listed[0].split() == ["CURRENT", "NAME", "GATEWAY"]
    assert listed[1].split() == ["default", url] and listed[2].split() == ["*", "second", url]
    assert tok1 not in "\n".join(listed)

    # Flags and environment variables win over the profile.
    assert "User:    user01" in ok(cli("--token", tok1, "whoami")).output
    assert "Profile: (none: flags or environment)" in ok(cli("--token", tok1, "whoami")).output
    assert "User:    user01" in ok(cli("whoami", env={"AGOLA_TOKEN": tok1})).output
    # Another gateway URL does not get the profile's token.
    elsewhere = url.replace("127.0.0.1", "localhost")
    other = cli("-u", elsewhere, "whoami")
    assert other.exit_code == 1
    assert other.output == f"Error: not logged in to {elsewhere}: agola login -u {elsewhere} (or --token / AGOLA_TOKEN)\n"

    missing = cli("--profile", "nope", "whoami")
    assert missing.exit_code == 2 and "no profile 'nope'" in missing.output

    ok(cli("profile", "use", "default"))
    assert "User:    user01" in ok(cli("whoami")).output
    assert ok(cli("logout")).output == f"logged out: profile default ({url}) removed\n"
    gone = cli("whoami")
    assert gone.exit_code == 1 and "not logged in" in gone.output
    assert "User:    user02" in ok(cli("--profile", "second", "whoami")).output
    assert "token" not in yaml.safe_load(path.read_text())["profiles"].get("default", {})

    # The admin token is a valid login too.
    ok(cli("--profile", "admin", "login", "-u", url, "--token", ADMIN))
    assert "User:    admin (the admin token)" in ok(cli("whoami")).output


def test_login_with_a_remote_source_account(control_plane: RoleStack, tmp_path: Path,
                                            private_config_home: Path) -> None:
    """A password remote source (the Gitea emulator): the account's login and password give a
    login token (JWT) that the profile keeps; it works for the API and for git pushes."""
    url = control_plane.url
    emulator = GiteaEmulator(tmp_path / "gitea", ssh=False).start()
    try:
        emulator.add_user("nora", "nora-pw")
        ok(cli("-u", url, "--token", ADMIN, "remotesource", "create", "-n", "gitea", "--type", "gitea",
               "--auth-type", "password", "--api-url", emulator.url))
        token = _token(control_plane, "nora")
        ok(cli("-u", url, "--token", token, "user", "linkedaccount", "create", "-n", "nora", "-r", "gitea",
               "--remote-name", "nora", "--remote-password", "nora-pw"))

        wrong = cli("login", "-u", url, "-r", "gitea", "--username", "nora", input="nope\n")
        assert wrong.exit_code == 1 and wrong.stderr.splitlines()[-1].startswith("Error: gitea ")
        assert "nope" not in wrong.output  # the password is not echoed

        signed = ok(cli("login", "-u", url, "-r", "gitea", "--username", "nora", input="nora-pw\n"))
        assert "nora-pw" not in signed.output and f"logged in to {url} as nora (profile default" in signed.output
        saved = yaml.safe_load((private_config_home / "agola" / "config.yml").read_text())
        assert saved["profiles"]["default"]["token"].count(".") == 2  # a login token, not the API token
        assert "User:    nora (id " in ok(cli("whoami")).output

        # The login token also authenticates the git push of a direct run.
        repo = tmp_path / "work"
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
        (repo / ".agola").mkdir()
        (repo / ".agola" / "config.yml").write_text(
            "runs: [{name: r, tasks: [{name: t, runtime: {containers: [{image: busybox}]}, steps: [{run: env}]}]}]\n")
        pushed = ok(cli("directrun", "start", "-C", str(repo)))
        assert "pushed " in pushed.stderr and "run requested" in pushed.stderr
    finally:
        emulator.stop()


def test_login_through_an_oauth2_remote_source(control_plane: RoleStack, tmp_path: Path,
                                               private_config_home: Path) -> None:
    """An OAuth2 source: the CLI prints the forge's page to open, the user pastes the address
    the browser was sent back to, and the profile gets the login token."""
    url = control_plane.url
    emulator = GiteaEmulator(tmp_path / "gitea", ssh=False).start()
    try:
        emulator.add_user("pia", "pia-pw")
        app = emulator.add_oauth_app(f"{url}/oauth2/callback")
        ok(cli("-u", url, "--token", ADMIN, "remotesource", "create", "-n", "gitea-oauth", "--type", "gitea",
               "--auth-type", "oauth2", "--api-url", emulator.url, "--clientid", app.client_id,
               "--secret", app.client_secret))
        _, started = call(f"{url}/api/register", {"username": "pia", "remote_source_name": "gitea-oauth"})
        call(follow_authorize(started["oauth2_redirect"], "pia", "pia-pw"),
             headers={"X-Agola-OAuth2-Nonce": started["oauth2_nonce"]})

        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
               "XDG_CONFIG_HOME": str(private_config_home)}
        proc = subprocess.Popen([sys.executable, "-m", "agola.cli.main", "login", "-u", url, "-r", "gitea-oauth"],
                                env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert proc.stderr is not None and proc.stdin is not None
            shown = b""
            while b"Address:" not in shown:
                ready, _, _ = select.select([proc.stderr], [], [], 60)
                assert ready, shown
                chunk = os.read(proc.stderr.fileno(), 65536)
                assert chunk, shown
                shown += chunk
            page = next(line.strip() for line in shown.decode().splitlines() if line.startswith("  http"))
            out, _ = proc.communicate((follow_authorize(page, "pia", "pia-pw") + "\n").encode(), timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, shown
        assert f"logged in to {url} as pia (profile default" in out.decode()
        assert "User:    pia (id " in ok(cli("whoami")).output
    finally:
        emulator.stop()


def test_a_broken_profiles_file_is_named(private_config_home: Path) -> None:
    path = private_config_home / "agola" / "config.yml"
    path.parent.mkdir()
    path.write_text("current: [oops\n")
    broken = cli("whoami")
    assert broken.exit_code == 1 and broken.stderr.startswith(f"Error: {path}: invalid YAML")
    # Commands that never talk to a gateway do not read it.
    assert cli("completion", "bash").exit_code == 0
