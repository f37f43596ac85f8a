"""``agola serve``: run a set of roles in this process (spec §1.1).

Exit codes: 0 after a graceful stop (SIGINT/SIGTERM), 1 when the config or the component list is
invalid, a role fails to start, or a role reports a fatal error while running.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import TYPE_CHECKING

import click

from agola.cli import CliContext

if TYPE_CHECKING:
    from agola.config import Config
    from agola.services.role import Role, RoleHost

DEFAULT_SHUTDOWN_TIMEOUT = 10.0


class _ServeCommand(click.Command):
    """Lists the roles (and which exist in this build) at the end of ``agola serve --help``."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from agola.services import registry

        rows = [(name, "available" if registry.is_implemented(name) else "not implemented yet")
                for name in registry.ROLES]
        rows += [("all", "every role"), ("all-base", "every role but executor")]
        with formatter.section("Components (start order)"):
            formatter.write_dl(rows)


@click.command(cls=_ServeCommand)
@click.option("--config", "config_path", default="./config.yml", show_default=True,
              help="Server config file (see docs/config.md).")
@click.option("--components", multiple=True, metavar="LIST",
              help="Roles to run: comma list and/or repeated (all, all-base, gateway, runservice, ...).")
@click.option("-d", "--debug", is_flag=True, help="Verbose logging.")
@click.option("--shutdown-timeout", type=float, default=DEFAULT_SHUTDOWN_TIMEOUT, show_default=True,
              help="Seconds to let in-flight requests finish on stop.")
@click.pass_context
def serve(ctx: click.Context, config_path: str, components: tuple[str, ...], debug: bool,
          shutdown_timeout: float) -> None:
    """Run agola server components (roles) in this process."""
    from agola.config import ConfigError, expand_components, load_config, with_generated_api_token
    from agola.errors import AgolaError
    from agola.services import registry
    from agola.util import log
    from agola.util.privatefiles import PRIVATE_UMASK

    obj = ctx.obj if isinstance(ctx.obj, CliContext) else CliContext()
    debug = debug or obj.debug
    log.setup(debug=debug)
    # Everything written under dataDir (databases holding secrets, repositories, task logs, and
    # host-driver steps' files) is the agola user's alone: 0700 directories, 0600 files.
    os.umask(PRIVATE_UMASK)
    try:
        enabled = expand_components(components)
        # `all`/`all-base` mean "every role this build has"; a role named explicitly must exist.
        explicit = {n.strip() for v in components for n in v.split(",")} - {"all", "all-base", ""}
        skipped = sorted(n for n in enabled - explicit if not registry.is_implemented(n))
        enabled -= set(skipped)
        if not enabled:
            raise ConfigError(["none of the requested components is implemented yet"], source="--components")
        config = load_config(config_path)
        warnings = config.validate(enabled)
        config = with_generated_api_token(config, enabled)
        names = registry.ordered(enabled)
        classes = [registry.load_role(name) for name in names]
    except ConfigError as exc:
        raise click.ClickException(exc.message) from None
    except AgolaError as exc:
        raise click.ClickException(exc.message) from None
    except OSError as exc:
        raise click.ClickException(f"cannot keep the generated internal API token: {exc}") from None
    if skipped:
        click.echo(f"warning: not implemented yet, not started: {', '.join(skipped)}", err=True)
    for warning in warnings:
        click.echo(f"warning: {config.source}: {warning}", err=True)
    for name in names:
        if config.section(name).debug:
            for logger in (f"agola.services.{name}", f"agola.{name}"):  # role code, request log
                logging.getLogger(logger).setLevel(logging.DEBUG)
    code = asyncio.run(_serve(config, classes, shutdown_timeout))
    ctx.exit(code)


async def _serve(config: Config, classes: list[type[Role]], shutdown_timeout: float) -> int:
    from agola.services.role import RoleHost, RoleStartError
    from agola.util.log import get_logger

    log = get_logger("agola.serve")
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)

    def on_signal(signum: int) -> None:
        if stop.is_set():
            # A second signal while stopping: the operator wants out now.
            os._exit(128 + signum)
        log.info("stopping", signal=signal.Signals(signum).name)
        stop.set()

    for sig in signals:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        try:
            roles = [_construct(cls, config) for cls in classes]
            host = RoleHost(roles, shutdown_timeout=shutdown_timeout)
            if not await _start_unless_stopped(host, stop):
                log.info("agola serve stopped during start")
                return 0
        except RoleStartError as exc:
            click.echo(f"agola serve: {exc}", err=True)
            return 1
        log.info("agola serve ready", components=",".join(r.name for r in roles))
        stopped = asyncio.create_task(stop.wait())
        failed = asyncio.create_task(host.wait_failure())
        done, _ = await asyncio.wait({stopped, failed}, return_when=asyncio.FIRST_COMPLETED)
        for t in (stopped, failed):
            t.cancel()
        await host.stop()
        if failed in done and not failed.cancelled():
            click.echo(f"agola serve: a component failed: {failed.result()}", err=True)
            return 1
        log.info("agola serve stopped")
        return 0
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def _construct(cls: type[Role], config: Config) -> Role:
    from agola.services.role import RoleStartError

    try:
        return cls(config)
    except Exception as exc:  # reported like a failed start
        raise RoleStartError(getattr(cls, "name", cls.__name__), exc) from exc


async def _start_unless_stopped(host: RoleHost, stop: asyncio.Event) -> bool:
    """Start the roles; a signal during a slow start cancels it (the host stops what it started)."""
    starting = asyncio.create_task(host.start())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if starting.done():
        starting.result()  # re-raises RoleStartError
        return True
    starting.cancel()
    try:
        await starting
    except asyncio.CancelledError:
        pass
    return False
