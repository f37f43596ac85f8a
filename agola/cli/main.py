"""The ``agola`` click group: global options and lazily loaded subcommands.

Adding a command is one line in ``COMMANDS``: ``name -> ("module:attr", "short help")``. The module is
imported only when the command runs (or its own ``--help`` is asked), so ``agola --help`` does not
pay for aiohttp, docker or etcd imports.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from agola import __version__
from agola.cli import CliContext

# name -> ("module:attr", short help shown by `agola --help` without importing the module)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("agola.cli.serve:serve", "Run agola server components (roles) in this process."),
    "version": ("agola.cli.version:version", "Print the client and gateway versions."),
    "pipeline": ("agola.cli.pipeline:pipeline", "Check and inspect pipeline files (.agola/config.*)."),
    "user": ("agola.cli.user:user", "Manage users, their API tokens and linked accounts."),
    "org": ("agola.cli.org:org", "Manage organizations and their members."),
    "projectgroup": ("agola.cli.projectgroup:projectgroup", "Manage project groups, their secrets and variables."),
    "project": ("agola.cli.project:project", "Manage projects, their secrets and variables."),
    "run": ("agola.cli.run:run", "List, inspect, follow and act on runs."),
    "directrun": ("agola.cli.directrun:directrun", "Run the pipeline of a local repository on agola."),
    "remotesource": ("agola.cli.remotesource:remotesource", "Manage remote sources (git hosts)."),
    "delivery": ("agola.cli.delivery:delivery", "List and redeliver run webhook and commit status deliveries."),
    "maintenance": ("agola.cli.maintenance:maintenance", "Maintenance mode of the configstore or runservice (admin)."),
    "export": ("agola.cli.maintenance:export_", "Export the configstore or runservice data to a file (admin)."),
    "import": ("agola.cli.maintenance:import_", "Import an export into the configstore or runservice (admin)."),
    "completion": ("agola.cli.completion:completion", "Print a shell completion script (bash, zsh, fish)."),
    "login": ("agola.cli.login:login", "Save a gateway URL and an API token as a profile."),
    "logout": ("agola.cli.login:logout", "Forget a profile's token."),
    "whoami": ("agola.cli.login:whoami", "Show the user (and profile) the commands run as."),
    "profile": ("agola.cli.login:profile", "List the login profiles, pick the current one."),
}
# Commands that never talk to a gateway: they do not read the profiles file.
_NO_PROFILE = frozenset({"serve", "pipeline", "completion"})

DEFAULT_GATEWAY_URL = "http://localhost:8000"


def _unavailable(name: str, reason: str) -> click.Command:
    def callback() -> None:
        raise click.ClickException(f"command {name!r} is not available: {reason}")

    return click.Command(name, callback=callback, help=f"(not available: {reason})",
                         context_settings={"ignore_unknown_options": True, "allow_extra_args": True})


class LazyGroup(click.Group):
    """A group whose subcommands are ``module:attr`` strings, imported on first use."""

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name not in self.lazy:
            return None
        target, _ = self.lazy[cmd_name]
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                return _unavailable(cmd_name, f"module {module_name} is not installed/implemented yet")
            raise
        command = getattr(module, attr, None)
        if not isinstance(command, click.Command):
            return _unavailable(cmd_name, f"{target} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in self.lazy:
                rows.append((name, self.lazy[name][1]))
            elif (cmd := self.commands.get(name)) is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(formatter.width)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-d", "--debug", is_flag=True, help="Verbose logging.")
@click.option("-u", "--gateway-url", envvar="AGOLA_GATEWAY_URL", default=None,
              help=f"Gateway URL (env AGOLA_GATEWAY_URL; default: the profile's, else {DEFAULT_GATEWAY_URL}).")
@click.option("--token", envvar="AGOLA_TOKEN", default=None, help="API token (env AGOLA_TOKEN; default: the profile's).")
@click.option("-p", "--profile", envvar="AGOLA_PROFILE", default=None,
              help="Login profile to use (env AGOLA_PROFILE; default: the current one, see agola login).")
@click.version_option(__version__, "--version", prog_name="agola", message="%(prog)s version %(version)s")
@click.pass_context
def agola(ctx: click.Context, debug: bool, gateway_url: str | None, token: str | None, profile: str | None) -> None:
    """agola: CI/CD pipelines as a DAG of tasks in containers.

    The gateway URL and token come from the flags, else AGOLA_GATEWAY_URL / AGOLA_TOKEN, else
    the login profile (agola login).
    """
    from agola.util import log

    log.setup(debug=debug)
    ctx.obj = _context(debug, gateway_url, token, profile, ctx.invoked_subcommand)


def _context(debug: bool, gateway_url: str | None, token: str | None, profile: str | None,
             command: str | None) -> CliContext:
    """Flags and environment first, then the profile, then the defaults."""
    if command in _NO_PROFILE or (gateway_url is not None and token is not None and not profile):
        return CliContext(debug=debug, gateway_url=gateway_url or DEFAULT_GATEWAY_URL, token=token or "",
                          profile_name=profile or "")
    from agola.cli._profiles import ProfileFile

    profiles = ProfileFile.load()
    chosen = profiles.get(profile)
    if profile and chosen is None and command not in ("login", "logout"):
        raise click.UsageError(f"no profile {profile!r} in {profiles.path} (agola login --profile {profile})")
    url = gateway_url or (chosen.gateway_url if chosen else "") or DEFAULT_GATEWAY_URL
    # A profile's token goes to that profile's gateway only, never to another URL given by flag.
    same_gateway = chosen is not None and url.rstrip("/") == chosen.gateway_url.rstrip("/")
    from_profile = token is None and same_gateway
    if token is None:
        token = chosen.token if chosen is not None and same_gateway else ""
    return CliContext(debug=debug, gateway_url=url, token=token, profile_name=profile or profiles.current,
                      from_profile=from_profile)


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``agola``)."""
    agola.main(args=argv, prog_name="agola")


if __name__ == "__main__":
    main(sys.argv[1:])
