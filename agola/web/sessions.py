"""Web UI sessions: a random id in a signed cookie, the API token kept on the server.

The cookie holds ``<session id>.<signature>`` (HMAC-SHA256 with ``gateway.cookieSigning.key``, or
a key generated into ``<gateway dataDir>/cookie-signing.key``, mode 0600). The token the user
signed in with never leaves the gateway again (not in the cookie, a URL or a page); every request
authenticates it anew through the gateway's ``Authenticator``, so a deleted token ends the
session. Signing out deletes the session here: a copied cookie is worthless afterwards.

Sessions live in the memory of one gateway process: a restart signs everyone out, and several
gateways behind one address need sticky sessions (a shared store is future work).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import attrs

from agola.config import Gateway
from agola.util.log import get_logger
from agola.util.privatefiles import generated_secret

__all__ = ["KEY_FILE", "MAX_SESSIONS", "Session", "SessionStore", "cookie_key"]

log = get_logger(__name__)

KEY_FILE = "cookie-signing.key"
# Beyond this many live sessions the oldest are dropped (a bound on memory, not a quota).
MAX_SESSIONS = 10000


@attrs.frozen
class Session:
    id: str = attrs.field(repr=False)
    token: str = attrs.field(repr=False)
    csrf: str = attrs.field(repr=False)
    expires: float

    def csrf_ok(self, presented: str) -> bool:
        return bool(presented) and hmac.compare_digest(presented.encode(), self.csrf.encode())


def cookie_key(gw: Gateway) -> bytes:
    """The configured ``cookieSigning.key``, else the one kept in the gateway's ``dataDir``."""
    if gw.cookie_signing.key:
        return gw.cookie_signing.key.encode()
    if not gw.data_dir:
        log.warning("no gateway dataDir: web sessions signed with a key that dies with the process")
        return secrets.token_bytes(32)
    value, _ = generated_secret(Path(gw.data_dir) / KEY_FILE, lambda: secrets.token_hex(32))
    return value.encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class SessionStore:
    """Sessions by id, each expiring ``duration`` seconds after sign-in."""

    def __init__(self, key: bytes, duration: float, *, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self.duration = duration
        self._clock = clock
        self._sessions: dict[str, Session] = {}

    def _signature(self, session_id: str) -> str:
        return _b64(hmac.new(self._key, session_id.encode(), hashlib.sha256).digest())

    def create(self, token: str) -> tuple[Session, str]:
        """A new session for ``token`` and the cookie value naming it."""
        self._prune()
        session = Session(id=secrets.token_urlsafe(32), token=token, csrf=secrets.token_urlsafe(32),
                          expires=self._clock() + self.duration)
        self._sessions[session.id] = session
        return session, f"{session.id}.{self._signature(session.id)}"

    def get(self, cookie: str) -> Session | None:
        """The live session a cookie names; None for a forged, expired or signed-out one."""
        session_id, _, signature = cookie.rpartition(".")
        if not session_id or not hmac.compare_digest(signature.encode(), self._signature(session_id).encode()):
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.expires <= self._clock():
            del self._sessions[session_id]
            return None
        return session

    def delete(self, session: Session) -> None:
        self._sessions.pop(session.id, None)

    def __len__(self) -> int:
        return len(self._sessions)

    def _prune(self) -> None:
        now = self._clock()
        for sid in [sid for sid, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[sid]
        # Dicts keep insertion order: the first ones are the oldest sign-ins.
        while len(self._sessions) >= MAX_SESSIONS:
            del self._sessions[next(iter(self._sessions))]
