"""Web UI sessions: a random id in a signed cookie, the API token kept on the server.

The cookie holds ``<session id>.<signature>`` (HMAC-SHA256 with ``gateway.cookieSigning.key``, or
a key generated into ``<gateway dataDir>/cookie-signing.key``, mode 0600). The token the user
signed in with never leaves the gateway again (not in the cookie, a URL or a page); every request
authenticates it anew through the gateway's ``Authenticator``, so a deleted token ends the
session. Signing out deletes the session: a copied cookie is worthless afterwards.

Sessions survive a restart: each is a file ``<gateway dataDir>/web-sessions/<sha256(id)>`` (0600,
directory 0700) holding its expiry, its CSRF token and the API token **sealed with the session
id**. The server keeps only the id's hash, so the files alone give neither a usable cookie nor the
token (the configstore stores tokens hashed too); only a browser's cookie opens its own session.
Without a ``dataDir`` sessions live in memory and a restart signs everyone out.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import attrs

from agola.config import Gateway
from agola.util.log import get_logger
from agola.util.privatefiles import generated_secret, private_dir, write_private

__all__ = ["KEY_FILE", "MAX_SESSIONS", "SESSIONS_DIR", "Session", "SessionStore", "cookie_key", "sessions_dir"]

log = get_logger(__name__)

KEY_FILE = "cookie-signing.key"
SESSIONS_DIR = "web-sessions"
# Beyond this many live sessions the oldest are dropped (a bound on memory and disk, not a quota).
MAX_SESSIONS = 10000


@attrs.frozen
class Session:
    id: str = attrs.field(repr=False)
    token: str = attrs.field(repr=False)
    csrf: str = attrs.field(repr=False)
    expires: float

    def csrf_ok(self, presented: str) -> bool:
        return bool(presented) and hmac.compare_digest(presented.encode(), self.csrf.encode())


@attrs.frozen
class _Stored:
    """A session as the server keeps it: no id, the token sealed with the id."""

    sealed: bytes = attrs.field(repr=False)
    csrf: str = attrs.field(repr=False)
    expires: float

    def to_file(self) -> bytes:
        return json.dumps({"sealed": _b64(self.sealed), "csrf": self.csrf, "expires": self.expires}).encode()

    @classmethod
    def from_file(cls, data: bytes) -> _Stored:
        raw = json.loads(data)
        return cls(base64.urlsafe_b64decode(raw["sealed"] + "=" * (-len(raw["sealed"]) % 4)), str(raw["csrf"]),
                   float(raw["expires"]))


def cookie_key(gw: Gateway) -> bytes:
    """The configured ``cookieSigning.key``, else the one kept in the gateway's ``dataDir``."""
    if gw.cookie_signing.key:
        return gw.cookie_signing.key.encode()
    if not gw.data_dir:
        log.warning("no gateway dataDir: web sessions signed with a key that dies with the process")
        return secrets.token_bytes(32)
    value, _ = generated_secret(Path(gw.data_dir) / KEY_FILE, lambda: secrets.token_hex(32))
    return value.encode()


def sessions_dir(gw: Gateway) -> Path | None:
    """Where sessions are kept: ``<dataDir>/web-sessions``; None (memory only) without a dataDir."""
    if not gw.data_dir:
        log.warning("no gateway dataDir: web sessions end when the gateway stops")
        return None
    return Path(gw.data_dir) / SESSIONS_DIR


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hashed(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _keystream(session_id: str, size: int) -> bytes:
    # HMAC-SHA256 keyed with the (random, single-use) session id as a PRF in counter mode.
    blocks = (hmac.new(session_id.encode(), b"agola-web-session-token/%d" % i, hashlib.sha256).digest()
              for i in range(size // 32 + 1))
    return b"".join(blocks)[:size]


def _seal(session_id: str, token: str) -> bytes:
    data = token.encode()
    return bytes(a ^ b for a, b in zip(data, _keystream(session_id, len(data))))


def _unseal(session_id: str, sealed: bytes) -> str:
    return bytes(a ^ b for a, b in zip(sealed, _keystream(session_id, len(sealed)))).decode(errors="replace")


class SessionStore:
    """Sessions by id, each expiring ``duration`` seconds after sign-in; kept in ``directory``
    (one private file each) when given, so they outlive the process."""

    def __init__(self, key: bytes, duration: float, *, directory: Path | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self.duration = duration
        self._clock = clock
        self._dir = directory
        self._sessions: dict[str, _Stored] = {}  # by the id's hash, oldest sign-in first
        if directory is not None:
            self._load(directory)

    def _load(self, directory: Path) -> None:
        private_dir(directory)
        now = self._clock()
        loaded: list[tuple[str, _Stored]] = []
        for path in directory.iterdir():
            if path.name.startswith("."):
                path.unlink(missing_ok=True)  # a write cut short
                continue
            try:
                stored = _Stored.from_file(path.read_bytes())
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("dropping an unreadable web session file", file=path.name)
                path.unlink(missing_ok=True)
                continue
            if stored.expires <= now:
                path.unlink(missing_ok=True)
                continue
            loaded.append((path.name, stored))
        loaded.sort(key=lambda item: item[1].expires)
        self._sessions = dict(loaded)

    def _signature(self, session_id: str) -> str:
        return _b64(hmac.new(self._key, session_id.encode(), hashlib.sha256).digest())

    async def create(self, token: str) -> tuple[Session, str]:
        """A new session for ``token`` (written down before this returns) and the cookie value
        naming it."""
        dropped = self._prune()
        session = Session(id=secrets.token_urlsafe(32), token=token, csrf=secrets.token_urlsafe(32),
                          expires=self._clock() + self.duration)
        hashed = _hashed(session.id)
        stored = _Stored(_seal(session.id, token), session.csrf, session.expires)
        self._sessions[hashed] = stored
        if self._dir is not None:
            await asyncio.to_thread(self._write, hashed, stored, dropped)
        return session, f"{session.id}.{self._signature(session.id)}"

    def get(self, cookie: str) -> Session | None:
        """The live session a cookie names; None for a forged, expired or signed-out one."""
        session_id, _, signature = cookie.rpartition(".")
        if not session_id or not hmac.compare_digest(signature.encode(), self._signature(session_id).encode()):
            return None
        stored = self._sessions.get(_hashed(session_id))
        if stored is None or stored.expires <= self._clock():
            return None
        return Session(session_id, _unseal(session_id, stored.sealed), stored.csrf, stored.expires)

    async def delete(self, session: Session) -> None:
        """End a session (sign-out, or its token was deleted): its cookie opens nothing after."""
        hashed = _hashed(session.id)
        self._sessions.pop(hashed, None)
        if self._dir is not None:
            await asyncio.to_thread(self._write, None, None, [hashed])

    def __len__(self) -> int:
        return len(self._sessions)

    def _prune(self) -> list[str]:
        """Drop expired sessions, and the oldest beyond ``MAX_SESSIONS``; their hashed ids."""
        now = self._clock()
        dropped = [h for h, s in self._sessions.items() if s.expires <= now]
        for h in dropped:
            del self._sessions[h]
        # Dicts keep insertion order: the first ones are the oldest sign-ins.
        while len(self._sessions) >= MAX_SESSIONS:
            oldest = next(iter(self._sessions))
            del self._sessions[oldest]
            dropped.append(oldest)
        return dropped

    def _write(self, hashed: str | None, stored: _Stored | None, removed: list[str]) -> None:
        assert self._dir is not None
        for h in removed:
            (self._dir / h).unlink(missing_ok=True)
        if hashed is not None and stored is not None:
            write_private(self._dir / hashed, stored.to_file())
