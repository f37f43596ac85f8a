"""Who is calling: the admin token, user API tokens and signed login tokens (JWT), spec §6.1.

Resolution order for one request:

1. ``Authorization: token <T>`` (or ``?access_token=<T>`` when T is not a JWT): T equal to the
   configured ``adminToken`` -> the admin; else the configstore looks the user up by token
   (tokens are stored hashed there); unknown -> 401. User tokens are checked whether or not an
   admin token is configured (the reference ignored them without one: quirk 6).
2. ``Authorization: bearer <JWT>`` (or a JWT in ``?access_token=``): verified with the configured
   method (HS256 with the key, RS256 with the **public** key: the reference used the private one,
   quirk 6); ``sub`` is the user id, an unknown user -> 401.
3. Else anonymous (401 where authentication is required).

Secrets are always compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

import attrs

from agola.config import TokenSigning
from agola.errors import BadRequest, NotExist, Unauthorized
from agola.roleclients.configstore import ConfigstoreAPI
from agola.types.configstore import User
from agola.util.log import get_logger

log = get_logger(__name__)

KEY_FILE = "token-signing.key"


@attrs.frozen
class Identity:
    """The caller. ``user`` is None for the admin token and for anonymous callers."""

    user: User | None = None
    admin: bool = False

    @property
    def anonymous(self) -> bool:
        return self.user is None and not self.admin

    @property
    def user_id(self) -> str:
        return self.user.id if self.user is not None else ""


ANONYMOUS = Identity()
ADMIN = Identity(admin=True)


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


# ---------------------------------------------------------------------------------------------
# JWT (compact JWS, HS256 or RS256)


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64d(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise Unauthorized("invalid token") from None


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


class TokenSigner:
    """Signs and verifies login tokens with the gateway's ``tokenSigning`` settings."""

    def __init__(self, method: str, *, key: bytes = b"", private_key: Any = None, public_key: Any = None,
                 duration: float = 12 * 3600.0) -> None:
        self.method = method
        self.duration = duration
        self._key = key
        self._private = private_key
        self._public = public_key

    @property
    def alg(self) -> str:
        return "HS256" if self.method == "hmac" else "RS256"

    @classmethod
    def from_config(cls, ts: TokenSigning, data_dir: str) -> TokenSigner:
        if ts.method == "rsa":
            return cls._rsa(ts)
        key = ts.key.encode() if ts.key else _generated_key(data_dir)
        return cls("hmac", key=key, duration=ts.duration)

    @classmethod
    def _rsa(cls, ts: TokenSigning) -> TokenSigner:
        try:
            from cryptography.hazmat.primitives import serialization
        except ImportError:
            raise BadRequest("rsa token signing needs the cryptography package") from None
        try:
            private = serialization.load_pem_private_key(Path(ts.private_key_path).read_bytes(), password=None)
            public = serialization.load_pem_public_key(Path(ts.public_key_path).read_bytes())
        except (OSError, ValueError, TypeError) as exc:
            raise BadRequest(f"gateway.tokenSigning: cannot load the rsa keys: {exc}") from None
        return cls("rsa", private_key=private, public_key=public, duration=ts.duration)

    def _sign(self, signing_input: bytes) -> bytes:
        if self.method == "hmac":
            return hmac.new(self._key, signing_input, hashlib.sha256).digest()
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        return self._private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())

    def _verify(self, signing_input: bytes, signature: bytes) -> bool:
        if self.method == "hmac":
            return hmac.compare_digest(self._sign(signing_input), signature)
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            self._public.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return False
        return True

    def encode(self, claims: dict[str, Any]) -> str:
        header = _b64e(json.dumps({"alg": self.alg, "typ": "JWT"}, separators=(",", ":")).encode())
        payload = _b64e(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{header}.{payload}".encode()
        return f"{header}.{payload}.{_b64e(self._sign(signing_input))}"

    def login_token(self, user_id: str, now: float | None = None) -> str:
        issued = time.time() if now is None else now
        return self.encode({"sub": user_id, "exp": int(issued + self.duration)})

    def decode(self, token: str, now: float | None = None) -> dict[str, Any]:
        """The verified claims; ``Unauthorized`` for anything wrong (never says what)."""
        parts = token.split(".")
        if len(parts) != 3:
            raise Unauthorized("invalid token")
        try:
            header = json.loads(_b64d(parts[0]))
            claims = json.loads(_b64d(parts[1]))
        except ValueError:
            raise Unauthorized("invalid token") from None
        # The algorithm is ours, never the token's choice (no "none", no hmac-with-public-key).
        if not isinstance(header, dict) or header.get("alg") != self.alg or not isinstance(claims, dict):
            raise Unauthorized("invalid token")
        if not self._verify(f"{parts[0]}.{parts[1]}".encode(), _b64d(parts[2])):
            raise Unauthorized("invalid token")
        exp = claims.get("exp")
        current = time.time() if now is None else now
        # A token without an expiry would be valid forever: refused (we always set one).
        if isinstance(exp, bool) or not isinstance(exp, (int, float)):
            raise Unauthorized("invalid token")
        if current >= exp:
            raise Unauthorized("token expired")
        return claims


def _generated_key(data_dir: str) -> bytes:
    """The hmac key kept in ``<gateway dataDir>/token-signing.key``, created on first start, so
    login tokens survive a restart."""
    if not data_dir:
        log.warning("no gateway dataDir: login tokens signed with a key that dies with the process")
        return secrets.token_bytes(32)
    path = Path(data_dir) / KEY_FILE
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex())
    os.replace(tmp, path)
    return key


# ---------------------------------------------------------------------------------------------
# request -> identity


@attrs.frozen
class Credentials:
    kind: str  # "token" | "bearer" | ""
    value: str = attrs.field(default="", repr=False)


NO_CREDENTIALS = Credentials("")


def extract_credentials(authorization: str, access_token: str) -> Credentials:
    """From the ``Authorization`` header (``token X`` / ``bearer X``, case-insensitive scheme) or
    the ``access_token`` query parameter."""
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "token" and value:
            return Credentials("token", value)
        if scheme.lower() == "bearer" and value:
            return Credentials("bearer", value)
        raise Unauthorized("unsupported authorization header (expected 'token <token>' or 'bearer <jwt>')")
    if access_token:
        return Credentials("bearer" if looks_like_jwt(access_token) else "token", access_token)
    return NO_CREDENTIALS


class Authenticator:
    """Turns credentials into an ``Identity`` through the configstore."""

    def __init__(self, configstore: ConfigstoreAPI, signer: TokenSigner, admin_token: str = "") -> None:
        self.configstore = configstore
        self.signer = signer
        self._admin_token = admin_token

    async def identify(self, creds: Credentials) -> Identity:
        if creds.kind == "token":
            return await self._by_token(creds.value)
        if creds.kind == "bearer":
            return await self._by_jwt(creds.value)
        return ANONYMOUS

    async def _by_token(self, token: str) -> Identity:
        if self._admin_token and constant_time_equal(token, self._admin_token):
            return ADMIN
        try:
            user = await self.configstore.get_user_by_token(token)
        except NotExist:
            raise Unauthorized("invalid token") from None
        return Identity(user=user, admin=user.admin)

    async def _by_jwt(self, token: str) -> Identity:
        claims = self.signer.decode(token)
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise Unauthorized("invalid token")
        try:
            user = await self.configstore.get_user(sub)
        except NotExist:
            raise Unauthorized("invalid token") from None
        # A JWT names a user by id: a user renamed to what looks like that id must not match.
        if user.id != sub:
            raise Unauthorized("invalid token")
        return Identity(user=user, admin=user.admin)
