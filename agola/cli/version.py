"""``agola version``: the client's version and the gateway's (``GET /api/v1alpha/version``)."""

from __future__ import annotations

import click

from agola import __version__
from agola.cli import CliContext
from agola.cli._output import call, print_json

_WIDTH = len("Gateway version:") + 1


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def version(ctx: CliContext, as_json: bool) -> None:
    """Print the client version, then the gateway's."""
    if not as_json:
        # First, so it shows even when the gateway cannot be reached.
        click.echo("Client version:".ljust(_WIDTH) + __version__)
    remote = call(ctx, lambda gw: gw.version())
    if as_json:
        print_json({"client": __version__, "gateway": remote.version})
    else:
        click.echo("Gateway version:".ljust(_WIDTH) + remote.version)
