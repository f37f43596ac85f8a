"""The ``agola`` command line: ``agola serve`` and the client commands (through the gateway).

Commands are loaded lazily (see ``agola.cli.main.COMMANDS``) so ``agola --help`` stays fast; a
command module receives the global options as a ``CliContext`` in ``click.Context.obj``::

    @click.command()
    @click.pass_obj
    def mycommand(ctx: CliContext) -> None:
        ctx.gateway_url, ctx.token, ctx.debug
"""

from __future__ import annotations

import attrs


@attrs.frozen
class CliContext:
    """Global options of the ``agola`` command."""

    debug: bool = False
    gateway_url: str = "http://localhost:8000"
    token: str = attrs.field(default="", repr=False)
    # The login profile named by --profile / AGOLA_PROFILE, else the current one ("" for none).
    profile_name: str = ""
    # Whether the token came from that profile (not from flags or the environment).
    from_profile: bool = False
