"""Login profiles of the client commands: ``~/.config/agola/config.yml`` (``$XDG_CONFIG_HOME``
respected), a 0600 file in a 0700 directory::

    current: default
    profiles:
      default:
        gateway_url: http://127.0.0.1:8000
        token: <an API token>
      ci:
        gateway_url: https://agola.example.com
        token: ...

Where the gateway URL and the token come from, first match wins: the ``--gateway-url`` /
``--token`` flags, the ``AGOLA_GATEWAY_URL`` / ``AGOLA_TOKEN`` environment variables, the
profile named by ``--profile`` (or ``AGOLA_PROFILE``), the current profile, the defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs

from agola.cli._output import CliError

CONFIG_FILE = "config.yml"
DEFAULT_PROFILE = "default"


def config_path() -> Path:
    """``$XDG_CONFIG_HOME/agola/config.yml``, else ``~/.config/agola/config.yml``."""
    base = os.environ.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".config"
    return root / "agola" / CONFIG_FILE


@attrs.frozen
class Profile:
    name: str
    gateway_url: str = ""
    token: str = attrs.field(default="", repr=False)


@attrs.define
class ProfileFile:
    """The profiles and which one is current, as read from (and written back to) ``path``."""

    path: Path
    current: str = ""
    profiles: dict[str, Profile] = attrs.field(factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> ProfileFile:
        """The file at ``path`` (default ``config_path()``); empty when it does not exist."""
        import yaml

        path = path or config_path()
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(path)
        except OSError as exc:
            raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            doc = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise CliError(f"{path}: invalid YAML: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("profiles") or {}, dict):
            raise CliError(f"{path}: expected a map with 'current' and 'profiles'")
        profiles = {}
        for name, values in (doc.get("profiles") or {}).items():
            if not isinstance(values, dict):
                raise CliError(f"{path}: profile {name!r} is not a map")
            profiles[str(name)] = Profile(str(name), str(values.get("gateway_url") or ""), str(values.get("token") or ""))
        return cls(path, str(doc.get("current") or ""), profiles)

    def save(self) -> None:
        """Write the file atomically, 0600 in a 0700 directory (it holds tokens)."""
        import yaml

        from agola.util.privatefiles import write_private

        doc: dict[str, Any] = {
            "current": self.current,
            "profiles": {p.name: {"gateway_url": p.gateway_url, "token": p.token} for p in self.profiles.values()},
        }
        text = "# agola CLI profiles (agola login / logout); holds API tokens: keep it private\n"
        text += yaml.safe_dump(doc, sort_keys=False)
        try:
            write_private(self.path, text.encode())
        except OSError as exc:
            raise CliError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def get(self, name: str | None) -> Profile | None:
        """The profile ``name``, or (``None``) the current one; ``None`` if there is none."""
        return self.profiles.get(name if name else self.current)


def check_name(name: str) -> str:
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise CliError(f"invalid profile name {name!r}: letters, digits, '-', '_' and '.' only")
    return name
