"""``agola maintenance enable|disable|status SERVICE``, ``agola export SERVICE -o FILE``, ``agola
import SERVICE -i FILE``: the admin's maintenance mode, backups and restores of the configstore and
the runservice (docs/operations.md).

An export is written to ``FILE.partial`` (mode 0600: it holds secret values) and renamed to
``FILE`` only once complete, so a cut export never passes for a backup. On a terminal both transfers show their progress on stderr.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

import click

from agola.cli import CliContext
from agola.cli._output import CliError, call, done, format_table, json_option, print_json
from agola.util.privatefiles import PRIVATE_FILE_MODE

if TYPE_CHECKING:
    from agola.client import GatewayClient, MaintenanceStatusResponse

SERVICE = click.Choice(["configstore", "runservice"])
CHUNK = 256 * 1024
# How often a terminal's progress line is redrawn, and how often a switch is checked.
REDRAW = 0.2
POLL = 0.2


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class Progress:
    """Bytes moved and time elapsed: redrawn in place on a terminal (stderr), silent otherwise."""

    def __init__(self, verb: str, total: int | None = None, out: IO[str] | None = None) -> None:
        self.verb = verb
        self.total = total
        self.bytes = 0
        self.out = out if out is not None else sys.stderr
        self.live = self.out.isatty()
        self.start = time.monotonic()
        self._drawn = 0.0

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def add(self, n: int) -> None:
        self.bytes += n
        now = time.monotonic()
        if self.live and now - self._drawn >= REDRAW:
            self._drawn = now
            self.out.write(f"\r{self.line()}")
            self.out.flush()

    def line(self) -> str:
        of = f" of {human_size(self.total)} ({self.bytes * 100 // self.total}%)" if self.total else ""
        return f"{self.verb} {human_size(self.bytes)}{of} in {self.elapsed:.1f}s"

    def finish(self) -> None:
        if self.live and self._drawn:
            self.out.write("\r\x1b[K")  # the final sentence replaces the progress line
            self.out.flush()


# --------------------------------------------------------------------------- maintenance


@click.group()
def maintenance() -> None:
    """Maintenance mode of the configstore or the runservice (admin only).

    In maintenance mode a service serves only maintenance, export and import: what an import
    needs. Every instance of the service switches.
    """


_wait = click.option("--wait/--no-wait", default=True, show_default=True,
                     help="Wait until every instance has switched.")
_timeout = click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for the switch.")


@maintenance.command("enable")
@click.argument("service", type=SERVICE)
@_wait
@_timeout
@click.pass_obj
def enable(ctx: CliContext, service: str, wait: bool, timeout: float) -> None:
    """Put SERVICE in maintenance mode."""
    _switch(ctx, service, True, wait, timeout)


@maintenance.command("disable")
@click.argument("service", type=SERVICE)
@_wait
@_timeout
@click.pass_obj
def disable(ctx: CliContext, service: str, wait: bool, timeout: float) -> None:
    """Bring SERVICE back to normal mode."""
    _switch(ctx, service, False, wait, timeout)


def _switch(ctx: CliContext, service: str, enabled: bool, wait: bool, timeout: float) -> None:
    mode = "maintenance mode" if enabled else "normal mode"

    async def run(gw: GatewayClient) -> MaintenanceStatusResponse | None:
        await gw.set_maintenance(service, enabled)
        if not wait:
            return None
        deadline = time.monotonic() + timeout
        while True:
            status = await gw.maintenance_status(service)
            if status.current_status is enabled:
                return status
            if time.monotonic() > deadline:
                pending = ", ".join(i.id for i in status.instances if i.current_status is not enabled)
                raise CliError(f"{mode} requested for {service}, but not every instance switched within "
                               f"{timeout:g}s (still waiting: {pending}); see agola maintenance status {service}")
            await asyncio.sleep(POLL)

    status = call(ctx, run)
    if status is None:
        done(f"{mode} requested for {service}")
    else:
        n = len(status.instances)
        done(f"{service} is in {mode} ({n} instance{'s' if n != 1 else ''})")


@maintenance.command("status")
@click.argument("service", type=SERVICE)
@json_option
@click.pass_obj
def status(ctx: CliContext, service: str, as_json: bool) -> None:
    """The requested and current mode of SERVICE, and the mode of each instance."""
    st = call(ctx, lambda gw: gw.maintenance_status(service))
    if as_json:
        print_json(st)
        return

    def mode(on: bool) -> str:
        return "maintenance" if on else "normal"

    click.echo(f"{service}: requested {mode(st.requested_status)}, current {mode(st.current_status)}")
    columns = [("instance", lambda i: i.id), ("host", lambda i: i.host), ("pid", lambda i: i.pid),
               ("mode", lambda i: mode(i.current_status))]
    click.echo(format_table(st.instances, columns))


# --------------------------------------------------------------------------- export, import


@click.command("export")
@click.argument("service", type=SERVICE)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, writable=True),
              help="The file to write (replaced only once the export is complete).")
@click.option("--force", is_flag=True,
              help="runservice: export even though runs are not archived yet (they are left out).")
@click.pass_obj
def export_(ctx: CliContext, service: str, output: str, force: bool) -> None:
    """Export every object of SERVICE to a file (admin only; both modes).

    The runservice refuses while runs are queued, running, or finished and not archived yet
    (named in the error): they would be missing from the export. Logs and workspace archives
    stay in object storage: back it up too (docs/operations.md).
    """
    dest = Path(output)
    partial = dest.with_name(dest.name + ".partial")
    progress = Progress("exported")

    async def run(gw: GatewayClient, f: IO[bytes]) -> None:
        async for chunk in gw.export(service, force=force):
            f.write(chunk)
            progress.add(len(chunk))
        f.flush()
        os.fsync(f.fileno())

    def cleanup() -> str:
        partial.unlink(missing_ok=True)
        progress.finish()
        return f"interrupted: export of {service} abandoned, {dest} left as it was"

    try:
        # An export holds secret values (secrets, remote source credentials): owner only.
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
        os.fchmod(fd, PRIVATE_FILE_MODE)
        f = os.fdopen(fd, "wb")  # closed by the with below; opened first for a clean error
    except OSError as exc:
        raise CliError(f"cannot write {partial}: {exc.strerror}") from None
    try:
        with f:
            call(ctx, lambda gw: run(gw, f), interrupted=cleanup)
    except CliError:
        cleanup()
        raise
    os.replace(partial, dest)
    progress.finish()
    done(f"{service} exported to {dest}: {human_size(progress.bytes)} in {progress.elapsed:.1f}s")


@click.command("import")
@click.argument("service", type=SERVICE)
@click.option("-i", "--input", "input_", required=True, type=click.Path(exists=True, dir_okay=False),
              help="An export of the same service (agola export).")
@click.pass_obj
def import_(ctx: CliContext, service: str, input_: str) -> None:
    """Replace every object of SERVICE with an export (admin only; maintenance mode only:
    agola maintenance enable SERVICE first, and disable it after)."""
    path = Path(input_)
    progress = Progress("imported", total=path.stat().st_size)

    async def chunks(f: IO[bytes]) -> AsyncIterator[bytes]:
        while chunk := f.read(CHUNK):
            progress.add(len(chunk))
            yield chunk

    def interrupted() -> str:
        progress.finish()
        return (f"interrupted: the import of {service} may be cut short; {service} stays in maintenance mode, "
                "import again before disabling it")

    try:
        with open(path, "rb") as f:
            count = call(ctx, lambda gw: gw.import_(service, chunks(f)), interrupted=interrupted)
    finally:
        progress.finish()
    done(f"{service}: {count} objects imported from {path} ({human_size(progress.bytes)} in {progress.elapsed:.1f}s)")
