"""Shared plumbing of the client commands: calling the gateway, printing tables or JSON, and
turning failures into one-line errors with a non-zero exit status (never a stack trace).

Exit statuses: 0 success, 1 an error (the gateway's message, a git failure, a bad file),
2 a usage error (click), 3 a followed run that ended without success, 130 interrupted.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from agola.cli import CliContext

if TYPE_CHECKING:
    from agola.client import GatewayClient

T = TypeVar("T")

EXIT_ERROR = 1
EXIT_RUN_FAILED = 3
EXIT_INTERRUPTED = 130

Column = tuple[str, Callable[[Any], Any]]


class CliError(click.ClickException):
    """A one-line error for the user; ``exit_code`` defaults to 1."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table (for scripts).")


def call(ctx: CliContext, fn: Callable[[GatewayClient], Awaitable[T]],
         interrupted: Callable[[], str] | None = None) -> T:
    """Run ``fn`` with a client of the configured gateway; map every failure to a ``CliError``.

    On Ctrl-C the exit status is 130; ``interrupted()``, when given, says what the interruption
    left behind (printed on stderr instead of ``Error: interrupted``)."""
    from agola.client import ClientError, GatewayClient, Unauthorized

    async def main() -> T:
        async with GatewayClient(ctx.gateway_url, ctx.token) as gw:
            return await fn(gw)

    try:
        return asyncio.run(main())
    except Unauthorized as exc:
        if not ctx.token:
            hint = " (no token given: agola login, or --token / AGOLA_TOKEN)"
        elif ctx.from_profile:
            hint = f" (the token of profile {ctx.profile_name}: agola login again)"
        else:
            hint = ""
        raise CliError(exc.message + hint) from None
    except ClientError as exc:
        raise CliError(exc.message) from None
    except KeyboardInterrupt:
        message = interrupted() if interrupted is not None else ""
        if not message:
            raise CliError("interrupted", EXIT_INTERRUPTED) from None
        click.echo(message, err=True)
        sys.exit(EXIT_INTERRUPTED)


def to_plain(value: Any) -> Any:
    """A JSON-ready copy of API types (their wire form), lists and dicts of them."""
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if hasattr(value, "__attrs_attrs__"):
        import attrs

        return to_plain(attrs.asdict(value, recurse=False))
    return value


def print_json(value: Any) -> None:
    click.echo(json.dumps(to_plain(value), indent=2, sort_keys=True))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ",".join(_cell(v) for v in value)
    return str(value).replace("\n", " ")


def format_table(rows: Iterable[Any], columns: Sequence[Column]) -> str:
    """Left-aligned columns under upper-case headers, two spaces apart."""
    cells = [[h.upper() for h, _ in columns]] + [[_cell(get(row)) for _, get in columns] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def emit(value: Any, as_json: bool, columns: Sequence[Column]) -> None:
    """Print one object or a list: JSON, or a table (a single object as a one-row table)."""
    if as_json:
        print_json(value)
        return
    rows = value if isinstance(value, (list, tuple)) else [value]
    click.echo(format_table(rows, columns))


def emit_fields(value: Any, as_json: bool, fields: Sequence[Column]) -> None:
    """Print one object as ``Key: value`` lines (or JSON)."""
    if as_json:
        print_json(value)
        return
    width = max(len(name) for name, _ in fields) + 1
    for name, get in fields:
        click.echo(f"{(name + ':').ljust(width)} {_cell(get(value))}")


def done(message: str, value: Any = None, as_json: bool = False) -> None:
    """Report a change: the object as JSON for scripts, else a short sentence."""
    if as_json:
        print_json(value if value is not None else {})
    else:
        click.echo(message)


def pick(positional: str | None, option: str | None, what: str) -> str:
    """A value given either positionally or with its option (``user create NAME`` or ``-n NAME``)."""
    if positional and option and positional != option:
        raise click.UsageError(f"{what} given twice ({positional!r} and {option!r})")
    value = option or positional
    if not value:
        raise click.UsageError(f"missing {what}")
    return value


def read_yaml_source(path: str) -> Any:
    """A YAML (or JSON) document from a file, or from stdin when ``path`` is ``-``."""
    import yaml

    try:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CliError(f"{path}: invalid YAML: {exc}") from None
