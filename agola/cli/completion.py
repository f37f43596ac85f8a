"""``agola completion bash|zsh|fish``: print the shell completion script (click's)."""

from __future__ import annotations

import click


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the completion script of SHELL, e.g. `source <(agola completion bash)`."""
    from click.shell_completion import get_completion_class

    from agola.cli.main import agola

    cls = get_completion_class(shell)
    assert cls is not None  # the choice above only lists supported shells
    click.echo(cls(agola, {}, "agola", "_AGOLA_COMPLETE").source())
