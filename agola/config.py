"""The server configuration file (``config.yml``): attrs model, embedded defaults, validation.

YAML keys are camelCase (``runserviceURL``, ``objectStorage``); attributes are snake_case. Reading a
file never fails on a *value* problem: those are collected with their key path and reported by
``Config.validate(components)``, which only looks at the enabled components (spec §1.1) and raises
one ``ConfigError`` listing **every** problem. A YAML syntax error is raised at once, with its line
and column. Unknown keys are warnings (typos must not be silent).

Embedded defaults (so that ``dataDir: ./data`` alone runs ``--components all``):

* ``etcd`` absent -> ``None``: the role uses the embedded coordination store;
* ``objectStorage`` absent -> posix store under ``<role dataDir>/ost``;
* a role's ``dataDir`` absent -> ``<top-level dataDir>/<role>`` (top-level ``dataDir`` is ours);
* ``web.listenAddress`` absent -> ``127.0.0.1:<port of the agolademo>``;
* URLs between roles absent -> ``http://127.0.0.1:<port>`` from the listen addresses of this file.

The reference is ``reference/agola-spec.md`` §1.2; ``docs/config.md`` is the user-facing reference.

Why this file is not read by the wire codec (``agola.types._json``), although both turn a decoded
document into attrs classes with errors located by key path: the codec is fail-fast and strict by
design (the first bad value of a request is its 400; an unknown key is an error or silently
dropped), while a config file is read *collecting* every problem, only reported for the enabled
components, with unknown keys as warnings, key aliases (``active_tasks_limit``), relative paths
resolved against the file's directory, YAML scalars accepted as strings and comma lists as lists,
and durations in seconds. Each of those would be a codec option that no wire type may use. What is
genuinely the same is shared: durations are parsed by ``agola.util.duration`` (Go's syntax, plus
``d`` here).
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

import attrs
import yaml

from agola.errors import BadRequest
from agola.util.duration import NANOSECONDS_PER_SECOND, DurationError
from agola.util.duration import parse_duration as go_duration
from agola.util.log import get_logger
from agola.util.privatefiles import generated_secret

__all__ = [
    "ALL_COMPONENTS",
    "BASE_COMPONENTS",
    "DEFAULT_PORTS",
    "INTERNAL_APIS",
    "INTERNAL_API_TOKEN_FILE",
    "Config",
    "ConfigError",
    "ConfigWarning",
    "Configstore",
    "CookieSigning",
    "DockerOptions",
    "Driver",
    "Etcd",
    "Executor",
    "Gateway",
    "Gitserver",
    "Notification",
    "ObjectStorage",
    "Runservice",
    "Scheduler",
    "TokenSigning",
    "Web",
    "expand_components",
    "is_loopback",
    "listen_host_port",
    "load_config",
    "parse_config",
    "parse_duration",
    "valid_name",
    "with_generated_api_token",
]

log = get_logger(__name__)

# Start order of spec §1.1: the stateful services first, the gateway (which calls them) late.
ALL_COMPONENTS: tuple[str, ...] = (
    "runservice",
    "executor",
    "configstore",
    "scheduler",
    "notification",
    "gateway",
    "gitserver",
)
BASE_COMPONENTS: tuple[str, ...] = tuple(c for c in ALL_COMPONENTS if c != "executor")

# Listen ports of the reference agolademo; every role binds 127.0.0.1 by default.
DEFAULT_PORTS: dict[str, int] = {
    "gateway": 8000,
    "runservice": 4000,
    "executor": 4001,
    "configstore": 4002,
    "gitserver": 4003,
    "notification": 4004,
}
DEFAULT_HOST = "127.0.0.1"
DEFAULT_BUSYBOX_PATH = "/usr/bin/busybox"

OBJECT_STORAGE_TYPES = ("posix", "s3")
DRIVER_TYPES = ("docker", "host")
TOKEN_SIGNING_METHODS = ("hmac", "rsa")

# The roles serving an internal API, each protected by its API token (Agola v0.9 keys).
INTERNAL_APIS: tuple[str, ...] = ("runservice", "executor", "configstore", "gitserver", "notification")
# Which internal APIs each role calls: the client side of each token (``<api>APIToken`` in its section).
API_CLIENTS: dict[str, tuple[str, ...]] = {
    "gateway": ("runservice", "configstore", "gitserver", "notification"),
    "scheduler": ("runservice",),
    "notification": ("runservice", "configstore"),
    "runservice": ("executor",),
    "executor": ("runservice",),
}
# Ours: where a token is generated when none is configured (under the top-level dataDir).
INTERNAL_API_TOKEN_FILE = "internal-api-token"
# gateway.adminToken: a shorter token or a documentation placeholder is refused, never used.
MIN_ADMIN_TOKEN_LENGTH = 32
ADMIN_TOKEN_PLACEHOLDERS = ("change-me", "changeme", "replace-with", "replace-me")


class ConfigError(BadRequest):
    """The configuration is unusable. ``problems`` lists every problem, each with its key path."""

    def __init__(self, problems: Iterable[str], *, source: str = "config.yml") -> None:
        self.problems = list(problems)
        self.source = source
        lines = "\n".join(f"  - {p}" for p in self.problems)
        what = source if source.startswith("--") else f"configuration {source}"
        super().__init__(f"invalid {what}:\n{lines}", details=self.problems)


class ConfigWarning(str):
    """A warning about the configuration (e.g. an unknown key); a plain string with its key path."""


# ---------------------------------------------------------------------------------------------
# Schema helpers. Each field carries its YAML key and how to read the value.

def _key(yaml_key: str, kind: Any, default: Any = None, *, aliases: tuple[str, ...] = (),
         factory: Callable[[], Any] | None = None) -> Any:
    """An attrs field read from ``yaml_key`` (or an alias) with the given value ``kind``.

    ``kind`` is one of "str", "path", "bool", "int", "duration", "strmap", "strlist", or an attrs
    class for a nested section. Nested sections default to ``None`` (absent) unless a factory is
    given.
    """
    metadata = {"yaml": yaml_key, "kind": kind, "aliases": aliases}
    if factory is not None:
        return attrs.field(factory=factory, metadata=metadata)
    return attrs.field(default=default, metadata=metadata)


def _secret(yaml_key: str) -> Any:
    """A string key holding a credential: kept out of ``repr`` (and so out of logs)."""
    return attrs.field(default="", repr=False, metadata={"yaml": yaml_key, "kind": "str", "aliases": ()})


@attrs.frozen
class Web:
    listen_address: str = _key("listenAddress", "str", "")
    tls: bool = _key("tls", "bool", False)
    tls_cert_file: str = _key("tlsCertFile", "path", "")
    tls_key_file: str = _key("tlsKeyFile", "path", "")
    allowed_origins: tuple[str, ...] = _key("allowedOrigins", "strlist", ())

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def local_url(self) -> str:
        """The URL other roles of this installation use to reach this listener by default."""
        host, port = listen_host_port(self.listen_address)
        if host in ("", "0.0.0.0", "::"):
            host = DEFAULT_HOST
        if ":" in host:
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{port}"


@attrs.frozen
class Etcd:
    endpoints: str = _key("endpoints", "str", "")
    tls_cert_file: str = _key("tlsCertFile", "path", "")
    tls_key_file: str = _key("tlsKeyFile", "path", "")
    tls_ca_file: str = _key("tlsCAFile", "path", "")
    tls_skip_verify: bool = _key("tlsSkipVerify", "bool", False)

    @property
    def endpoint_list(self) -> list[str]:
        return [e.strip() for e in self.endpoints.split(",") if e.strip()]


@attrs.frozen
class ObjectStorage:
    type: str = _key("type", "str", "")
    # posix
    path: str = _key("path", "path", "")
    # s3
    endpoint: str = _key("endpoint", "str", "")
    bucket: str = _key("bucket", "str", "")
    location: str = _key("location", "str", "")
    access_key: str = _key("accessKey", "str", "")
    secret_access_key: str = attrs.field(
        default="", repr=False, metadata={"yaml": "secretAccessKey", "kind": "str", "aliases": ()})
    disable_tls: bool = _key("disableTLS", "bool", False)


@attrs.frozen
class TokenSigning:
    duration: float = _key("duration", "duration", 12 * 3600.0)
    method: str = _key("method", "str", "")
    key: str = attrs.field(default="", repr=False, metadata={"yaml": "key", "kind": "str", "aliases": ()})
    private_key_path: str = _key("privateKeyPath", "path", "")
    public_key_path: str = _key("publicKeyPath", "path", "")


@attrs.frozen
class CookieSigning:
    """Signs the web UI's session cookies (Agola v0.8's keys). No key: one is generated into
    ``<gateway dataDir>/cookie-signing.key``."""

    duration: float = _key("duration", "duration", 12 * 3600.0)
    key: str = attrs.field(default="", repr=False, metadata={"yaml": "key", "kind": "str", "aliases": ()})


@attrs.frozen
class Driver:
    type: str = _key("type", "str", "docker")


@attrs.frozen
class DockerOptions:
    # Container network mode for task containers; "" = the engine default.
    network: str = _key("network", "str", "")
    # Ours: move workspaces and caches through the Docker archive API, never the pods' io dirs
    # (an engine whose container root is not the executor's user, e.g. userns-remap).
    archive_api_only: bool = _key("archiveAPIOnly", "bool", False)


@attrs.frozen
class Gateway:
    name: ClassVar[str] = "gateway"
    debug: bool = _key("debug", "bool", False)
    # Ours: where the gateway keeps local state (e.g. a generated token signing key).
    data_dir: str = _key("dataDir", "path", "")
    api_exposed_url: str = _key("apiExposedURL", "str", "")
    web_exposed_url: str = _key("webExposedURL", "str", "")
    runservice_url: str = _key("runserviceURL", "str", "")
    configstore_url: str = _key("configstoreURL", "str", "")
    gitserver_url: str = _key("gitserverURL", "str", "")
    notification_url: str = _key("notificationURL", "str", "")
    runservice_api_token: str = _secret("runserviceAPIToken")
    configstore_api_token: str = _secret("configstoreAPIToken")
    gitserver_api_token: str = _secret("gitserverAPIToken")
    notification_api_token: str = _secret("notificationAPIToken")
    web: Web = _key("web", Web, factory=Web)
    etcd: Etcd | None = _key("etcd", Etcd)
    object_storage: ObjectStorage | None = _key("objectStorage", ObjectStorage)
    token_signing: TokenSigning = _key("tokenSigning", TokenSigning, factory=TokenSigning)
    cookie_signing: CookieSigning = _key("cookieSigning", CookieSigning, factory=CookieSigning)
    # Plain-HTTP development only: session cookies without the Secure flag behind a TLS proxy.
    unsecure_cookies: bool = _key("unsecureCookies", "bool", False)
    admin_token: str = attrs.field(
        default="", repr=False, metadata={"yaml": "adminToken", "kind": "str", "aliases": ()})


@attrs.frozen
class Scheduler:
    name: ClassVar[str] = "scheduler"
    debug: bool = _key("debug", "bool", False)
    runservice_url: str = _key("runserviceURL", "str", "")
    runservice_api_token: str = _secret("runserviceAPIToken")
    runs_per_group_limit: int = _key("runsPerGroupLimit", "int", 1)


@attrs.frozen
class Notification:
    name: ClassVar[str] = "notification"
    debug: bool = _key("debug", "bool", False)
    web_exposed_url: str = _key("webExposedURL", "str", "")
    runservice_url: str = _key("runserviceURL", "str", "")
    configstore_url: str = _key("configstoreURL", "str", "")
    runservice_api_token: str = _secret("runserviceAPIToken")
    configstore_api_token: str = _secret("configstoreAPIToken")
    api_token: str = _secret("apiToken")
    etcd: Etcd | None = _key("etcd", Etcd)
    # Ours: the embedded coordination (deliveries, locks) lives below when etcd is not set.
    data_dir: str = _key("dataDir", "path", "")
    web: Web = _key("web", Web, factory=Web)
    # Run webhooks (Agola v0.9): every run event POSTed to this URL, signed with the secret.
    webhook_url: str = _key("webhookURL", "str", "")
    webhook_secret: str = _secret("webhookSecret")
    run_webhook_expire_interval: float = _key("runWebhookExpireInterval", "duration", 168 * 3600.0)
    commit_status_expire_interval: float = _key("commitStatusExpireInterval", "duration", 168 * 3600.0)
    # Ours: a failed delivery is tried again after deliveryRetryInterval, doubling each time (at
    # most 10 minutes apart), up to deliveryMaxAttempts attempts in all.
    delivery_max_attempts: int = _key("deliveryMaxAttempts", "int", 8)
    delivery_retry_interval: float = _key("deliveryRetryInterval", "duration", 2.0)


@attrs.frozen
class Runservice:
    name: ClassVar[str] = "runservice"
    debug: bool = _key("debug", "bool", False)
    data_dir: str = _key("dataDir", "path", "")
    web: Web = _key("web", Web, factory=Web)
    api_token: str = _secret("apiToken")
    executor_api_token: str = _secret("executorAPIToken")
    etcd: Etcd | None = _key("etcd", Etcd)
    object_storage: ObjectStorage | None = _key("objectStorage", ObjectStorage)
    run_cache_expire_interval: float = _key("runCacheExpireInterval", "duration", 168 * 3600.0)
    run_workspace_expire_interval: float = _key("runWorkspaceExpireInterval", "duration", 168 * 3600.0)
    # Not in Agola: an executor silent this long is dead, its unfinished tasks fail as lost.
    executor_heartbeat_timeout: float = _key("executorHeartbeatTimeout", "duration", 60.0)


@attrs.frozen
class Executor:
    name: ClassVar[str] = "executor"
    debug: bool = _key("debug", "bool", False)
    data_dir: str = _key("dataDir", "path", "")
    runservice_url: str = _key("runserviceURL", "str", "")
    runservice_api_token: str = _secret("runserviceAPIToken")
    # Reference compat: a dir of agola-toolbox binaries. We inject a static busybox instead.
    toolbox_path: str = _key("toolboxPath", "path", "")
    busybox_path: str = _key("busyboxPath", "path", DEFAULT_BUSYBOX_PATH)
    web: Web = _key("web", Web, factory=Web)
    api_token: str = _secret("apiToken")
    driver: Driver = _key("driver", Driver, factory=Driver)
    docker: DockerOptions = _key("docker", DockerOptions, factory=DockerOptions)
    labels: dict[str, str] = _key("labels", "strmap", factory=dict)
    active_tasks_limit: int = _key("activeTasksLimit", "int", 2, aliases=("active_tasks_limit",))
    allow_privileged_containers: bool = _key("allowPrivilegedContainers", "bool", False)
    # The URL the runservice uses to reach this executor; default: from web.listenAddress.
    advertise_url: str = _key("advertiseURL", "str", "")
    # Not in Agola: bytes of one setup or step log; beyond, a marker line and the rest dropped.
    max_log_size: int = _key("maxLogSize", "int", 100 * 1024 * 1024)
    # Not in Agola: bytes of files in one workspace or cache archive; beyond, the step fails.
    max_archive_size: int = _key("maxArchiveSize", "int", 2 * 1024 * 1024 * 1024)


@attrs.frozen
class Configstore:
    name: ClassVar[str] = "configstore"
    debug: bool = _key("debug", "bool", False)
    data_dir: str = _key("dataDir", "path", "")
    web: Web = _key("web", Web, factory=Web)
    api_token: str = _secret("apiToken")
    etcd: Etcd | None = _key("etcd", Etcd)
    object_storage: ObjectStorage | None = _key("objectStorage", ObjectStorage)


@attrs.frozen
class Gitserver:
    name: ClassVar[str] = "gitserver"
    debug: bool = _key("debug", "bool", False)
    data_dir: str = _key("dataDir", "path", "")
    web: Web = _key("web", Web, factory=Web)
    api_token: str = _secret("apiToken")
    etcd: Etcd | None = _key("etcd", Etcd)
    object_storage: ObjectStorage | None = _key("objectStorage", ObjectStorage)
    # Not in Agola: bytes of the pack one push may send; a larger push is refused by git.
    max_push_size: int = _key("maxPushSize", "int", 1024 * 1024 * 1024)


@attrs.frozen
class Config:
    id: str = _key("id", "str", "agola")
    # Ours: the default parent of every role's dataDir.
    data_dir: str = _key("dataDir", "path", "")
    # Internal API tokens (servers and clients alike): a per-API token, else the shared one.
    internal_services_api_token: str = _secret("internalServicesAPIToken")
    runservice_api_token: str = _secret("runserviceAPIToken")
    executor_api_token: str = _secret("executorAPIToken")
    configstore_api_token: str = _secret("configstoreAPIToken")
    gitserver_api_token: str = _secret("gitserverAPIToken")
    notification_api_token: str = _secret("notificationAPIToken")
    gateway: Gateway = _key("gateway", Gateway, factory=Gateway)
    scheduler: Scheduler = _key("scheduler", Scheduler, factory=Scheduler)
    notification: Notification = _key("notification", Notification, factory=Notification)
    runservice: Runservice = _key("runservice", Runservice, factory=Runservice)
    executor: Executor = _key("executor", Executor, factory=Executor)
    configstore: Configstore = _key("configstore", Configstore, factory=Configstore)
    gitserver: Gitserver = _key("gitserver", Gitserver, factory=Gitserver)
    source: str = attrs.field(default="config.yml", metadata={"internal": True})
    # Problems found while reading values, as (top-level section, message); reported by validate().
    read_problems: tuple[tuple[str, str], ...] = attrs.field(default=(), metadata={"internal": True})
    warnings: tuple[str, ...] = attrs.field(default=(), metadata={"internal": True})

    def section(self, component: str) -> Any:
        if component not in ALL_COMPONENTS:
            raise KeyError(component)
        return getattr(self, component)

    def api_token_for(self, api: str, *, caller: str | None = None) -> str:
        """The token of the internal API of ``api`` (one of ``INTERNAL_APIS``), "" when none.

        ``caller=None``: the token the ``api`` role requires (``<api>.apiToken``); else the one
        ``caller``'s clients send (``<caller>.<api>APIToken``). Either falls back to the top-level
        ``<api>APIToken``, then to ``internalServicesAPIToken``, as in Agola.
        """
        if api not in INTERNAL_APIS:
            raise KeyError(api)
        if caller is None:
            own = getattr(self.section(api), "api_token", "")
        elif api in API_CLIENTS.get(caller, ()):
            own = getattr(self.section(caller), f"{api}_api_token")
        else:
            raise KeyError(f"{caller} does not call the {api} API")
        return str(own or getattr(self, f"{api}_api_token") or self.internal_services_api_token)

    def api_tokens_in_use(self, components: Iterable[str]) -> dict[str, str]:
        """Every token the enabled ``components`` serve or send, by its key path (empty: none)."""
        tokens: dict[str, str] = {}
        for component in components:
            if component in INTERNAL_APIS:
                tokens[f"{component}.apiToken"] = self.api_token_for(component)
            for api in API_CLIENTS.get(component, ()):
                tokens[f"{component}.{api}APIToken"] = self.api_token_for(api, caller=component)
        return tokens

    def validate(self, components: Iterable[str]) -> list[str]:
        """Check the enabled components; return warnings, raise ``ConfigError`` with every problem."""
        enabled = set(components)
        unknown = enabled - set(ALL_COMPONENTS)
        if unknown:
            raise ConfigError([f"unknown component {c!r}" for c in sorted(unknown)], source=self.source)
        problems = [msg for section, msg in self.read_problems if section in enabled or section not in ALL_COMPONENTS]
        problems.extend(_validate(self, enabled))
        if problems:
            raise ConfigError(problems, source=self.source)
        return list(self.warnings)


# ---------------------------------------------------------------------------------------------
# Scalars

def parse_duration(value: Any) -> float:
    """A Go-style duration ("12h", "1h30m", "90s", "500ms", "7d") or a number of seconds, in seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{value!r} is negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a duration")
    try:
        nanoseconds = go_duration(value, days=True)
    except DurationError as exc:
        raise ValueError(f'"{value}": {exc}') from None
    if nanoseconds < 0:
        raise ValueError(f'"{value}" is negative')
    return nanoseconds / NANOSECONDS_PER_SECOND


def listen_host_port(address: str) -> tuple[str, int]:
    """Split ``host:port`` (``:8000``, ``127.0.0.1:4000``, ``[::1]:4000``); raise ValueError."""
    if not address:
        raise ValueError("empty listen address")
    host, sep, port_text = address.rpartition(":")
    if not sep:
        raise ValueError(f'"{address}" has no port (expected host:port, e.g. "127.0.0.1:8000")')
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f'"{address}": port "{port_text}" is not a number') from None
    if not 0 <= port <= 65535:
        raise ValueError(f'"{address}": port {port} out of range')
    return host, port


_NAME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9]*([-]?[a-zA-Z0-9]+)+$")


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def valid_name(name: str) -> bool:
    """Name rules of spec §5.1: letter first, letters/digits and single inner dashes, not a UUID."""
    return bool(_NAME_RE.match(name)) and not _is_uuid(name)


# ---------------------------------------------------------------------------------------------
# Reading

class _Reader:
    def __init__(self, base_dir: Path | None) -> None:
        self.base_dir = base_dir
        self.problems: list[tuple[str, str]] = []
        self.warnings: list[str] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append((path.split(".", 1)[0], f"{path}: {message}"))

    def build(self, cls: type, data: Any, path: str) -> Any:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.problem(path, f"expected a mapping, got {_describe(data)}")
            data = {}
        values: dict[str, Any] = {}
        known: set[str] = set()
        for field in attrs.fields(cls):
            if field.metadata.get("internal"):
                continue
            meta = field.metadata
            names = (meta["yaml"], *meta["aliases"])
            known.update(names)
            present = [n for n in names if n in data]
            if not present:
                continue
            if len(present) > 1:
                self.problem(_join(path, present[0]), f"set twice (as {' and '.join(present)})")
            key = present[0]
            try:
                values[field.name] = self.value(meta["kind"], data[key], _join(path, key))
            except ValueError as exc:
                self.problem(_join(path, key), str(exc))
        for key in data:
            if key not in known:
                self.warnings.append(f"{_join(path, str(key))}: unknown key (ignored)")
        return cls(**values)

    def value(self, kind: Any, raw: Any, path: str) -> Any:
        if isinstance(kind, type):
            if raw is None:
                return None if _optional_section(kind) else kind()
            return self.build(kind, raw, path)
        if kind in ("str", "path"):
            if raw is None:
                return ""
            if isinstance(raw, (dict, list)):
                raise ValueError(f"expected a string, got {_describe(raw)}")
            text = raw if isinstance(raw, str) else _scalar_text(raw)
            return self.resolve_path(text) if kind == "path" else text
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            raise ValueError(f"expected true or false, got {_describe(raw)}")
        if kind == "int":
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise ValueError(f"expected an integer, got {_describe(raw)}")
            return raw
        if kind == "duration":
            return parse_duration(raw)
        if kind == "strmap":
            if raw is None:
                return {}
            if not isinstance(raw, dict):
                raise ValueError(f"expected a mapping of strings, got {_describe(raw)}")
            return {str(k): _scalar_text(v) for k, v in raw.items()}
        if kind == "strlist":
            if raw is None:
                return ()
            if isinstance(raw, str):
                return tuple(s.strip() for s in raw.split(",") if s.strip())
            if not isinstance(raw, list):
                raise ValueError(f"expected a list of strings, got {_describe(raw)}")
            return tuple(_scalar_text(v) for v in raw)
        raise AssertionError(f"unknown kind {kind!r}")

    def resolve_path(self, text: str) -> str:
        """Relative paths are relative to the config file's directory (stable under systemd)."""
        if not text or self.base_dir is None:
            return text
        p = Path(text).expanduser()
        return str(p if p.is_absolute() else (self.base_dir / p))


def _optional_section(cls: type) -> bool:
    return cls in (Etcd, ObjectStorage)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def parse_config(text: str, source: str = "config.yml", *, base_dir: str | Path | None = None) -> Config:
    """Read a config from YAML text. Syntax errors raise ``ConfigError`` at once (with line and
    column); value problems are kept for ``Config.validate``."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_error(exc)], source=source) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"top level: expected a mapping of sections, got {_describe(data)}"], source=source)
    reader = _Reader(Path(base_dir) if base_dir is not None else None)
    raw: Config = reader.build(Config, data, "")
    cfg = _apply_defaults(raw)
    return attrs.evolve(
        cfg, source=source, read_problems=tuple(reader.problems), warnings=tuple(reader.warnings))


def load_config(path: str | Path) -> Config:
    """Read ``path``; relative paths inside it are resolved against its directory."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError([f"cannot read config file: {exc.strerror or exc}"], source=str(p)) from None
    return parse_config(text, str(p), base_dir=p.resolve().parent)


def _yaml_error(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    detail = f"{context}; {problem}" if context else problem
    return f"YAML syntax error at {where}{detail}"


# ---------------------------------------------------------------------------------------------
# Embedded defaults

def _apply_defaults(cfg: Config) -> Config:
    def data_dir(current: str, role: str) -> str:
        if current or not cfg.data_dir:
            return current
        return str(Path(cfg.data_dir) / role)

    def web(w: Web, role: str) -> Web:
        if w.listen_address:
            return w
        return attrs.evolve(w, listen_address=f"{DEFAULT_HOST}:{DEFAULT_PORTS[role]}")

    def ost(o: ObjectStorage | None, ddir: str) -> ObjectStorage | None:
        if o is None:
            return ObjectStorage(type="posix", path=str(Path(ddir) / "ost")) if ddir else None
        if o.type == "posix" and not o.path and ddir:
            return attrs.evolve(o, path=str(Path(ddir) / "ost"))
        return o

    rs_dir = data_dir(cfg.runservice.data_dir, "runservice")
    cs_dir = data_dir(cfg.configstore.data_dir, "configstore")
    runservice = attrs.evolve(
        cfg.runservice, data_dir=rs_dir, web=web(cfg.runservice.web, "runservice"),
        object_storage=ost(cfg.runservice.object_storage, rs_dir))
    configstore = attrs.evolve(
        cfg.configstore, data_dir=cs_dir, web=web(cfg.configstore.web, "configstore"),
        object_storage=ost(cfg.configstore.object_storage, cs_dir))
    gitserver = attrs.evolve(
        cfg.gitserver, data_dir=data_dir(cfg.gitserver.data_dir, "gitserver"),
        web=web(cfg.gitserver.web, "gitserver"))
    notification_web = web(cfg.notification.web, "notification")
    gateway_web = web(cfg.gateway.web, "gateway")

    urls = {
        "runservice": _safe_url(runservice.web),
        "configstore": _safe_url(configstore.web),
        "gitserver": _safe_url(gitserver.web),
        "notification": _safe_url(notification_web),
        "gateway": _safe_url(gateway_web),
    }
    gw = cfg.gateway
    gateway = attrs.evolve(
        gw,
        data_dir=data_dir(gw.data_dir, "gateway"),
        web=gateway_web,
        api_exposed_url=gw.api_exposed_url or urls["gateway"],
        web_exposed_url=gw.web_exposed_url or gw.api_exposed_url or urls["gateway"],
        runservice_url=gw.runservice_url or urls["runservice"],
        configstore_url=gw.configstore_url or urls["configstore"],
        gitserver_url=gw.gitserver_url or urls["gitserver"],
        notification_url=gw.notification_url or urls["notification"],
        # No signing configured: hmac with a key the gateway generates and keeps in its dataDir.
        token_signing=(gw.token_signing if gw.token_signing.method
                       else attrs.evolve(gw.token_signing, method="hmac")),
    )
    ex = cfg.executor
    executor_web = web(ex.web, "executor")
    executor = attrs.evolve(
        ex, data_dir=data_dir(ex.data_dir, "executor"), web=executor_web,
        runservice_url=ex.runservice_url or urls["runservice"],
        advertise_url=ex.advertise_url or _safe_url(executor_web))
    scheduler = attrs.evolve(cfg.scheduler, runservice_url=cfg.scheduler.runservice_url or urls["runservice"])
    nt = cfg.notification
    notification = attrs.evolve(
        nt,
        data_dir=data_dir(nt.data_dir, "notification"),
        web=notification_web,
        web_exposed_url=nt.web_exposed_url or gateway.web_exposed_url,
        runservice_url=nt.runservice_url or urls["runservice"],
        configstore_url=nt.configstore_url or urls["configstore"],
    )
    return attrs.evolve(
        cfg, gateway=gateway, scheduler=scheduler, notification=notification, runservice=runservice,
        executor=executor, configstore=configstore, gitserver=gitserver)


def _safe_url(w: Web) -> str:
    # A bad listen address is reported by validation; here it just yields no default URL.
    try:
        return w.local_url()
    except ValueError:
        return ""


# ---------------------------------------------------------------------------------------------
# Validation (enabled components only)

def _validate(cfg: Config, enabled: set[str]) -> list[str]:
    problems: list[str] = []
    if len(cfg.id) > 20:
        problems.append(f'id: "{cfg.id}" is longer than 20 characters')
    elif not valid_name(cfg.id):
        problems.append(f'id: "{cfg.id}" is not a valid name (a letter first, then letters, digits and single dashes)')
    checks: dict[str, Callable[[Any], list[str]]] = {
        "gateway": _check_gateway,
        "scheduler": _check_scheduler,
        "notification": _check_notification,
        "runservice": _check_stateful,
        "configstore": _check_stateful,
        "executor": _check_executor,
        "gitserver": _check_gitserver,
    }
    for component in ALL_COMPONENTS:
        if component in enabled:
            problems.extend(checks[component](getattr(cfg, component)))
            problems.extend(_check_api_token(cfg, component))
    return problems


def _check_api_token(cfg: Config, component: str) -> list[str]:
    """An internal API reachable from other hosts must not run open (Agola would; we refuse)."""
    web = getattr(cfg.section(component), "web", None)
    if component not in INTERNAL_APIS or web is None or cfg.api_token_for(component):
        return []
    try:
        host, _ = listen_host_port(web.listen_address)
    except ValueError:
        return []  # reported by the web check
    if is_loopback(host):
        return []
    return [f'{component}.web.listenAddress: "{web.listen_address}" is reachable from other hosts '
            f"but no API token protects the {component} API: set internalServicesAPIToken "
            f"(or {component}APIToken, or {component}.apiToken) to a long random string, the same "
            f"in the config of every host (see docs/security.md)"]


def is_loopback(host: str) -> bool:
    """Whether a listen host only accepts local connections ("" and 0.0.0.0 listen everywhere)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


# ---------------------------------------------------------------------------------------------
# Generated internal API token

def with_generated_api_token(cfg: Config, components: Iterable[str]) -> Config:
    """``cfg`` with ``internalServicesAPIToken`` set from ``<dataDir>/internal-api-token`` when a
    token the enabled ``components`` use is not configured and the top-level ``dataDir`` is set.

    The file is created (0600, a random token) on first use and reused after, so every process of
    an installation sharing the ``dataDir`` (one process running all roles, or several on one host)
    serves and sends the same token. Without a top-level ``dataDir`` nothing changes: the roles run
    open, which validation only allows on loopback. The token is never logged.
    """
    enabled = list(components)
    if cfg.internal_services_api_token or not cfg.data_dir:
        return cfg
    if all(cfg.api_tokens_in_use(enabled).values()):
        return cfg
    path = Path(cfg.data_dir) / INTERNAL_API_TOKEN_FILE
    token, created = generated_secret(path, lambda: secrets.token_urlsafe(32))
    log.info("generated the internal API token" if created else "internal API token read from its file",
             file=str(path))
    return attrs.evolve(cfg, internal_services_api_token=token)


def _missing(path: str) -> str:
    return f"{path}: required"


def _check_url(path: str, value: str) -> list[str]:
    if not value:
        return [_missing(path)]
    if not re.match(r"^https?://[^/\s]+", value):
        return [f'{path}: "{value}" is not an http(s) URL']
    return []


def _check_web(path: str, w: Web) -> list[str]:
    problems: list[str] = []
    try:
        listen_host_port(w.listen_address)
    except ValueError as exc:
        problems.append(f"{path}.listenAddress: {exc}")
    if w.tls:
        if not w.tls_cert_file:
            problems.append(f"{path}.tlsCertFile: required when tls is true")
        if not w.tls_key_file:
            problems.append(f"{path}.tlsKeyFile: required when tls is true")
    return problems


def _check_etcd(path: str, e: Etcd | None) -> list[str]:
    if e is None:
        return []
    problems = []
    if not e.endpoint_list:
        problems.append(f"{path}.endpoints: required (or remove the etcd section to use the embedded store)")
    for ep in e.endpoint_list:
        if not re.match(r"^https?://[^/\s]+", ep):
            problems.append(f'{path}.endpoints: "{ep}" is not an http(s) URL')
    return problems


def _check_object_storage(path: str, o: ObjectStorage | None) -> list[str]:
    if o is None:
        return []  # only possible without dataDir, which is reported on its own
    if o.type not in OBJECT_STORAGE_TYPES:
        got = f'unknown type "{o.type}"' if o.type else "type required"
        return [f"{path}.type: {got} (expected posix or s3)"]
    problems = []
    if o.type == "posix" and not o.path:
        problems.append(_missing(f"{path}.path"))
    if o.type == "s3":
        if not o.bucket:
            problems.append(f"{path}.bucket: required for s3 object storage")
        if not o.endpoint:
            problems.append(f"{path}.endpoint: required for s3 object storage")
    return problems


def _check_gateway(g: Gateway) -> list[str]:
    p = "gateway"
    problems: list[str] = []
    for key, value in (("apiExposedURL", g.api_exposed_url), ("webExposedURL", g.web_exposed_url),
                       ("runserviceURL", g.runservice_url), ("configstoreURL", g.configstore_url),
                       ("gitserverURL", g.gitserver_url), ("notificationURL", g.notification_url)):
        problems.extend(_check_url(f"{p}.{key}", value))
    problems.extend(_check_web(f"{p}.web", g.web))
    problems.extend(_check_etcd(f"{p}.etcd", g.etcd))
    ts = g.token_signing
    if ts.method not in TOKEN_SIGNING_METHODS:
        problems.append(f'{p}.tokenSigning.method: unknown method "{ts.method}" (expected hmac or rsa)')
    elif ts.method == "hmac" and not ts.key and not g.data_dir:
        problems.append(f"{p}.tokenSigning.key: required for hmac (or set dataDir to keep a generated key)")
    elif ts.method == "rsa":
        if not ts.private_key_path:
            problems.append(f"{p}.tokenSigning.privateKeyPath: required for rsa")
        if not ts.public_key_path:
            problems.append(f"{p}.tokenSigning.publicKeyPath: required for rsa")
    if ts.duration <= 0:
        problems.append(f"{p}.tokenSigning.duration: must be positive")
    if g.cookie_signing.duration <= 0:
        problems.append(f"{p}.cookieSigning.duration: must be positive")
    problems.extend(_check_admin_token(f"{p}.adminToken", g.admin_token))
    return problems


def _check_admin_token(path: str, token: str) -> list[str]:
    """Empty is fine (the gateway generates one); the value itself is never quoted."""
    if not token:
        return []
    if token.strip().lower().startswith(ADMIN_TOKEN_PLACEHOLDERS):
        return [f"{path}: a placeholder, not a token (remove the key to have one generated into "
                f"<dataDir>/gateway/admin-token, or set a random string of at least "
                f"{MIN_ADMIN_TOKEN_LENGTH} characters)"]
    if len(token) < MIN_ADMIN_TOKEN_LENGTH:
        return [f"{path}: too short ({len(token)} characters, at least {MIN_ADMIN_TOKEN_LENGTH}; "
                f"remove the key to have one generated)"]
    return []


def _check_scheduler(s: Scheduler) -> list[str]:
    problems = _check_url("scheduler.runserviceURL", s.runservice_url)
    if s.runs_per_group_limit < 1:
        problems.append("scheduler.runsPerGroupLimit: must be at least 1")
    return problems


def _check_notification(n: Notification) -> list[str]:
    p = "notification"
    problems = [
        *_check_url(f"{p}.webExposedURL", n.web_exposed_url),
        *_check_url(f"{p}.runserviceURL", n.runservice_url),
        *_check_url(f"{p}.configstoreURL", n.configstore_url),
        *_check_web(f"{p}.web", n.web),
        *_check_etcd(f"{p}.etcd", n.etcd),
    ]
    if n.etcd is None and not n.data_dir:
        problems.append(f"{p}.dataDir: required without etcd (or set the top-level dataDir)")
    if n.webhook_url:
        problems.extend(_check_url(f"{p}.webhookURL", n.webhook_url))
    if n.delivery_max_attempts < 1:
        problems.append(f"{p}.deliveryMaxAttempts: must be at least 1")
    if n.delivery_retry_interval <= 0:
        problems.append(f"{p}.deliveryRetryInterval: must be positive")
    return problems


def _check_stateful(s: Runservice | Configstore) -> list[str]:
    p = s.name
    problems = [] if s.data_dir else [f"{p}.dataDir: required (or set the top-level dataDir)"]
    problems.extend(_check_web(f"{p}.web", s.web))
    problems.extend(_check_etcd(f"{p}.etcd", s.etcd))
    problems.extend(_check_object_storage(f"{p}.objectStorage", s.object_storage))
    if isinstance(s, Runservice) and s.executor_heartbeat_timeout < 5:
        # Executors send a heartbeat every 2s: less would fail the tasks of live executors.
        problems.append(f"{p}.executorHeartbeatTimeout: must be at least 5s")
    return problems


def _check_executor(e: Executor) -> list[str]:
    p = "executor"
    problems = [] if e.data_dir else [f"{p}.dataDir: required (or set the top-level dataDir)"]
    problems.extend(_check_url(f"{p}.runserviceURL", e.runservice_url))
    problems.extend(_check_web(f"{p}.web", e.web))
    if e.driver.type == "kubernetes":
        problems.append(f'{p}.driver.type: "kubernetes" is not supported by this implementation (use docker or host)')
    elif e.driver.type not in DRIVER_TYPES:
        got = f'unknown type "{e.driver.type}"' if e.driver.type else "type required"
        problems.append(f"{p}.driver.type: {got} (expected docker or host)")
    if not e.busybox_path:
        problems.append(_missing(f"{p}.busyboxPath"))
    if e.active_tasks_limit < 1:
        problems.append(f"{p}.activeTasksLimit: must be at least 1")
    if e.max_log_size < 1024:
        problems.append(f"{p}.maxLogSize: must be at least 1024 (bytes)")
    if e.max_archive_size < 1:
        problems.append(f"{p}.maxArchiveSize: must be at least 1 (bytes)")
    if e.advertise_url:
        problems.extend(_check_url(f"{p}.advertiseURL", e.advertise_url))
    return problems


def _check_gitserver(g: Gitserver) -> list[str]:
    problems = [] if g.data_dir else ["gitserver.dataDir: required (or set the top-level dataDir)"]
    problems.extend(_check_web("gitserver.web", g.web))
    if g.max_push_size < 1:
        problems.append("gitserver.maxPushSize: must be at least 1 (bytes)")
    return problems


# ---------------------------------------------------------------------------------------------
# Components

def expand_components(values: Iterable[str]) -> set[str]:
    """``--components`` values (repeated and/or comma lists) to role names; ``all``/``all-base``."""
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    if not names:
        raise ConfigError(["no enabled components (use --components all, all-base or a list of roles)"],
                          source="--components")
    result: set[str] = set()
    bad: list[str] = []
    for n in names:
        if n == "all":
            result.update(ALL_COMPONENTS)
        elif n == "all-base":
            result.update(BASE_COMPONENTS)
        elif n in ALL_COMPONENTS:
            result.add(n)
        else:
            bad.append(n)
    if bad:
        valid = ", ".join(("all", "all-base", *ALL_COMPONENTS))
        raise ConfigError([f'unknown component "{n}" (valid: {valid})' for n in bad], source="--components")
    return result
