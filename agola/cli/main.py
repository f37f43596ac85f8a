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
    "completion": ("agola.cli.completion:completion", "Print a shell completion script (bash, zsh, fish)."),
}

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
@click.option("-u", "--gateway-url", envvar="AGOLA_GATEWAY_URL", default=DEFAULT_GATEWAY_URL,
              show_default=True, help="Gateway URL (env AGOLA_GATEWAY_URL).")
@click.option("--token", envvar="AGOLA_TOKEN", default="", help="API token (env AGOLA_TOKEN).")
@click.version_option(__version__, "--version", prog_name="agola", message="%(prog)s version %(version)s")
@click.pass_context
def agola(ctx: click.Context, debug: bool, gateway_url: str, token: str) -> None:
    """agola: CI/CD pipelines as a DAG of tasks in containers."""
    from agola.util import log

    log.setup(debug=debug)
    ctx.obj = CliContext(debug=debug, gateway_url=gateway_url, token=token)


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``agola``)."""
    agola.main(args=argv, prog_name="agola")


if __name__ == "__main__":
    main(sys.argv[1:])
