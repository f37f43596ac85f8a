"""What a role is, and how one process runs several of them.

A role (gateway, runservice, executor, ...) is a ``Role`` subclass living in
``agola/services/<name>/role.py`` and registered in ``agola.services.registry``::

    class GitserverRole(Role):
        name = "gitserver"

        async def start(self) -> None: ...   # open storage, start loops; raise to abort serve
        async def stop(self) -> None: ...    # stop loops, close storage (idempotent)
        def web_app(self) -> web.Application | None:
            return make_app(self.name)       # + routes; served on <section>.web.listenAddress

``RoleHost`` starts roles in order (role ``start()`` then its web server), stops them in reverse
(web server first: stop accepting, let in-flight requests finish up to a timeout; then ``stop()``),
and turns a role's fatal error (``Role.fail``) into the end of the process. Event streams and
followed logs do not hold a stop: they are cut as soon as their server stops listening.
"""

from __future__ import annotations

import abc
import asyncio
import ssl
from typing import Any, ClassVar

from aiohttp import web

from agola.config import Config, Web, listen_host_port
from agola.util.http import HEALTH_PROBE_KEY, track_long_lived
from agola.util.log import get_logger

log = get_logger(__name__)

DEFAULT_SHUTDOWN_TIMEOUT = 10.0


class Role(abc.ABC):
    """One component of the control plane, constructed from the whole ``Config``."""

    name: ClassVar[str]

    def __init__(self, config: Config) -> None:
        self.config = config
        self._failed: asyncio.Future[BaseException] | None = None

    @property
    def section(self) -> Any:
        """This role's config section (``config.<name>``)."""
        return self.config.section(self.name)

    @abc.abstractmethod
    async def start(self) -> None:
        """Prepare and start background work. Raising aborts ``agola serve``."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop background work and release resources. Also called after a failed ``start()``, so it
        must cope with a partial start."""

    def web_app(self) -> web.Application | None:
        """The role's HTTP application (built with ``agola.util.http.make_app``), or None."""
        return None

    def web_runner_options(self) -> dict[str, Any]:
        """Extra ``aiohttp.web.AppRunner`` options (e.g. ``auto_decompress=False``)."""
        return {}

    def web_settings(self) -> Web | None:
        """Where ``web_app()`` is served; default: the section's ``web``."""
        return getattr(self.section, "web", None)

    def health_problem(self) -> str | None:
        """Why the role cannot serve right now, for ``/health`` (None: it can)."""
        return None

    def fail(self, exc: BaseException) -> None:
        """Report a fatal error from a background task: the process stops and exits non-zero."""
        log.error("role failed", role=self.name, error=str(exc))
        if self._failed is not None and not self._failed.done():
            self._failed.set_result(exc)


class WebServer:
    """An aiohttp application on one listen address, with graceful shutdown."""

    def __init__(self, app: web.Application, settings: Web, *,
                 shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
                 runner_options: dict[str, Any] | None = None) -> None:
        self.app = app
        self.settings = settings
        self.shutdown_timeout = shutdown_timeout
        self.runner_options = dict(runner_options or {})
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        host, port = listen_host_port(self.settings.listen_address)
        track_long_lived(self.app)
        runner = web.AppRunner(self.app, handle_signals=False, access_log=None,
                               shutdown_timeout=self.shutdown_timeout, **self.runner_options)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host or None, port, ssl_context=self._ssl_context())
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        # The bound port (differs from the configured one when that is 0).
        self.port = int(runner.addresses[0][1]) if runner.addresses else port

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.settings.tls:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.settings.tls_cert_file, self.settings.tls_key_file)
        return ctx

    async def stop(self) -> None:
        """Stop listening, end long-lived streams (``agola.util.http.long_lived``) at once, wait for
        the other in-flight requests up to the timeout, then close."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


class RoleStartError(Exception):
    """A role failed to start; ``role`` names it, ``__cause__`` is the original error."""

    def __init__(self, role: str, error: BaseException) -> None:
        super().__init__(f"component {role} failed to start: {_describe(error)}")
        self.role = role
        self.error = error


class RoleHost:
    """Runs roles in one process: ordered start, reverse stop, fatal-error propagation.

    Construct it inside the running event loop. A cancelled ``start()`` stops what it started.
    """

    def __init__(self, roles: list[Role], *, shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT) -> None:
        self.roles = roles
        self.shutdown_timeout = shutdown_timeout
        self._started: list[tuple[Role, WebServer | None]] = []
        self._failed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def start(self) -> None:
        """Start every role in order; on failure stop the started ones and raise RoleStartError."""
        for role in self.roles:
            role._failed = self._failed  # noqa: SLF001 - the host owns the failure channel
            try:
                server = await self._start_one(role)
            except asyncio.CancelledError:
                await self.stop()
                raise
            except Exception as exc:
                await self.stop()
                raise RoleStartError(role.name, exc) from exc
            self._started.append((role, server))
            settings = role.web_settings() if server else None
            log.info("role started", role=role.name, listen=settings.listen_address if settings else "-")

    async def _start_one(self, role: Role) -> WebServer | None:
        try:
            await role.start()
            app = role.web_app()
            settings = role.web_settings()
            if app is None or settings is None:
                return None
            if HEALTH_PROBE_KEY not in app:  # an app built once is served again after a restart
                app[HEALTH_PROBE_KEY] = role.health_problem
            server = WebServer(app, settings, shutdown_timeout=self.shutdown_timeout,
                               runner_options=role.web_runner_options())
            await server.start()
            return server
        except BaseException:
            await _quiet_stop(role)
            raise

    async def wait_failure(self) -> BaseException:
        """Resolves when a role reports a fatal error (``Role.fail``)."""
        return await asyncio.shield(self._failed)

    async def stop(self) -> None:
        while self._started:
            role, server = self._started.pop()
            if server is not None:
                try:
                    await server.stop()
                except Exception as exc:  # noqa: BLE001 - keep stopping the others
                    log.warning("web server stop failed", role=role.name, error=str(exc))
            await _quiet_stop(role)
            log.info("role stopped", role=role.name)


async def _quiet_stop(role: Role) -> None:
    try:
        await role.stop()
    except Exception as exc:  # noqa: BLE001 - stopping must go on for every role
        log.warning("role stop failed", role=role.name, error=str(exc))


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return text if text else type(exc).__name__
