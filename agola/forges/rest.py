"""What the GitHub and GitLab drivers share: one aiohttp session per driver, typed errors for every
forge answer (rate limits with their wait, a refused token as "re-authorize the linked account"),
OAuth2 code exchange and refresh (JSON or form-encoded answers), and small payload helpers.

A subclass sets ``forge``, builds its URLs and adds its own headers (``default_headers``).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import attrs
from yarl import URL

from agola.errors import BadRequest
from agola.forges.base import (
    ForgeError,
    ForgeRateLimited,
    ForgeUnauthorized,
    ForgeUnreachable,
    OAuth2Token,
    TokenRefused,
    TokenSaver,
    WebhookRejected,
    forge_error_for_status,
)
from agola.types.configstore import RemoteSource
from agola.util.log import get_logger

log = get_logger(__name__)

ZERO_SHA = "0" * 40
# Refresh an OAuth2 access token that expires within this delay (the reference's expireTimeRange).
REFRESH_MARGIN = timedelta(minutes=5)
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=10)
# A 429 without any header saying how long: GitHub documents "wait at least one minute".
DEFAULT_RATE_LIMIT_WAIT = 60.0
# More pages than this is a forge answering the same "next" forever, not a real list.
MAX_PAGES = 200
REAUTHORIZE = "the forge refused the token (revoked or expired): re-authorize the linked account"


@attrs.frozen
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


class RestForge:
    """The transport of one driver: one forge, one account (``token``, None for OAuth2 calls)."""

    forge: str = ""

    def __init__(self, remote_source: RemoteSource, token: OAuth2Token | None = None, *,
                 on_token_refresh: TokenSaver | None = None, on_token_refused: TokenRefused | None = None) -> None:
        self._rs = remote_source
        self._token = token
        self._on_refresh = on_token_refresh
        self._on_refused = on_token_refused
        self._session: aiohttp.ClientSession | None = None
        self._refresh_lock = asyncio.Lock()

    async def __aenter__(self) -> RestForge:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def default_headers(self) -> dict[str, str]:
        return {}

    def token_url(self) -> str:
        raise NotImplementedError

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=False) if self._rs.skip_verify else None
            self._session = aiohttp.ClientSession(timeout=REQUEST_TIMEOUT, connector=connector)
        return self._session

    # ------------------------------------------------------------------------------- transport

    async def send(self, call: str, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                   json_body: Any = None, data: Any = None, ok: tuple[int, ...] = (200,)) -> Answer:
        """One request (``url`` already percent-encoded); a typed error for any answer not in ``ok``."""
        try:
            async with self._http().request(method, URL(url, encoded=True), headers=headers, json=json_body,
                                            data=data) as resp:
                answer = Answer(resp.status, dict(resp.headers), await resp.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ForgeUnreachable(self.forge, call, f"cannot reach {URL(url).origin()}: {type(exc).__name__}") from None
        if answer.status not in ok:
            wait = rate_limit_wait(answer.status, answer.headers)
            if wait is not None:
                log.info("forge rate limit", forge=self.forge, call=call, retry_after=wait)
                raise ForgeRateLimited(self.forge, call, wait, forge_status=answer.status)
            if answer.status == 401:
                raise ForgeUnauthorized(self.forge, call, REAUTHORIZE, forge_status=401)
            raise forge_error_for_status(self.forge, call, answer.status, error_message(answer.body))
        return answer

    async def api(self, call: str, method: str, url: str, *, json_body: Any = None, ok: tuple[int, ...] = (200,),
                  headers: Mapping[str, str] | None = None) -> Answer:
        """A call as the account: the token refreshed first when it expires soon, and once more
        when the forge refuses it while a refresh token is at hand. A token the forge still
        refuses is reported (``on_token_refused``) before the error is raised."""
        try:
            return await self._as_account(call, method, url, json_body=json_body, ok=ok, headers=headers)
        except ForgeUnauthorized as exc:
            if exc.forge_status == 401 and self._on_refused is not None:
                await self._on_refused(str(exc))
            raise

    async def _as_account(self, call: str, method: str, url: str, *, json_body: Any, ok: tuple[int, ...],
                   headers: Mapping[str, str] | None) -> Answer:
        used = await self._access_token(call)
        try:
            return await self.send(call, method, url, json_body=json_body, ok=ok,
                                   headers={**self.default_headers(), **(headers or {}), **bearer(used)})
        except ForgeUnauthorized:
            assert self._token is not None
            if not self._token.refresh_token:
                raise
            await self._refresh(call, stale=used)
            return await self.send(call, method, url, json_body=json_body, ok=ok,
                                   headers={**self.default_headers(), **(headers or {}), **bearer(self._token.access_token)})

    async def api_json(self, call: str, method: str, url: str, *, json_body: Any = None,
                       ok: tuple[int, ...] = (200,)) -> Any:
        return decode_json(self.forge, call, (await self.api(call, method, url, json_body=json_body, ok=ok)).body)

    async def _access_token(self, call: str) -> str:
        if self._token is None or not self._token.access_token:
            raise ForgeUnauthorized(self.forge, call, "no token for this account (link an account first)")
        expires_at = self._token.expires_at
        if expires_at is not None and self._token.refresh_token and expires_at - datetime.now(UTC) <= REFRESH_MARGIN:
            await self._refresh(call, stale=self._token.access_token)
        return self._token.access_token

    async def _refresh(self, call: str, *, stale: str) -> None:
        async with self._refresh_lock:
            token = self._token
            if token is None or token.access_token != stale:
                return  # another call refreshed it meanwhile
            try:
                new = await self.oauth2_refresh(token.refresh_token)
            except ForgeUnauthorized:
                raise ForgeUnauthorized(self.forge, call, REAUTHORIZE, forge_status=401) from None
            self._token = new
            log.info("oauth2 token refreshed", forge=self.forge, remote_source=self._rs.name)
            if self._on_refresh is not None:
                await self._on_refresh(new)

    # ---------------------------------------------------------------------------------- OAuth2

    async def token_request(self, call: str, form: dict[str, str]) -> OAuth2Token:
        """POST to the token endpoint (client credentials in the body, as both forges accept);
        the answer may be JSON or form-encoded (GitHub's default)."""
        form = {**form, "client_id": self._rs.oauth2_client_id, "client_secret": self._rs.oauth2_client_secret}
        answer = await self.send(call, "POST", self.token_url(), headers={"Accept": "application/json"},
                                 data=form, ok=(200, 201, 400, 401))
        data = token_answer(answer)
        if answer.status not in (200, 201) or data.get("error") or not data.get("access_token"):
            err = data.get("error_description") or data.get("error") or f"HTTP {answer.status}"
            raise ForgeUnauthorized(self.forge, call, f"no access token: {err}", forge_status=answer.status)
        expires_at = None
        try:
            seconds = int(data.get("expires_in") or 0)
        except (TypeError, ValueError):
            seconds = 0
        if seconds > 0:
            expires_at = datetime.now(UTC) + timedelta(seconds=seconds)
        return OAuth2Token(access_token=str(data["access_token"]),
                           refresh_token=as_str(data.get("refresh_token")) or form.get("refresh_token", ""),
                           expires_at=expires_at)

    async def oauth2_exchange_code(self, code: str, redirect_uri: str) -> OAuth2Token:
        return await self.token_request("oauth2_exchange_code", {
            "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri})

    async def oauth2_refresh(self, refresh_token: str) -> OAuth2Token:
        return await self.token_request("oauth2_refresh", {"grant_type": "refresh_token",
                                                           "refresh_token": refresh_token})

    async def create_access_token(self, login: str, password: str, token_name: str) -> str:
        raise BadRequest(f"{self.forge} remote sources use OAuth2 (auth type oauth2), not passwords")


# --------------------------------------------------------------------------------------- helpers


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def rate_limit_wait(status: int, headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait when an answer says the rate limit is spent, else None (a plain 403)."""
    if status not in (403, 429):
        return None
    now = time.time() if now is None else now
    retry_after = header(headers, "Retry-After").strip()
    if retry_after:
        try:
            return max(1.0, float(retry_after))
        except ValueError:
            try:
                return max(1.0, parsedate_to_datetime(retry_after).timestamp() - now)
            except (TypeError, ValueError):
                pass
    remaining = header(headers, "X-RateLimit-Remaining") or header(headers, "RateLimit-Remaining")
    reset = header(headers, "X-RateLimit-Reset") or header(headers, "RateLimit-Reset")
    if remaining.strip() == "0" and reset:
        try:
            return max(1.0, float(reset) - now)
        except ValueError:
            return DEFAULT_RATE_LIMIT_WAIT
    return DEFAULT_RATE_LIMIT_WAIT if status == 429 else None


def header(headers: Mapping[str, str], name: str) -> str:
    """A header whatever the case of its name in ``headers`` (a plain dict in tests)."""
    value = headers.get(name)
    if value is None:
        lower = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lower), "")
    return value or ""


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of a delivered token or signature (any characters)."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8", "replace"))


def require_secret(secret: str) -> None:
    if not secret:
        raise WebhookRejected("the project has no webhook secret: deliveries can't be verified")


def as_str(value: Any) -> str:
    return "" if value is None else str(value)


def decode_json(forge: str, call: str, body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        raise ForgeError(forge, call, "the answer is not JSON") from None


def webhook_json(forge: str, body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError:
        raise BadRequest(f"malformed {forge} webhook payload: not JSON") from None
    if not isinstance(payload, dict):
        raise BadRequest(f"malformed {forge} webhook payload: not a JSON object")
    return payload


def token_answer(answer: Answer) -> dict[str, Any]:
    ctype = header(answer.headers, "Content-Type").split(";")[0].strip().lower()
    text = answer.body.decode(errors="replace")
    if ctype in ("application/x-www-form-urlencoded", "text/plain"):
        return dict(parse_qsl(text))
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def error_message(body: bytes) -> str:
    """The forge's own words for an error answer (``message``, GitLab's field errors, OAuth2's)."""
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode(errors="replace").strip()
    if not isinstance(data, dict):
        return ""
    message = data.get("message") or data.get("error_description") or data.get("error")
    if isinstance(message, dict):  # GitLab validation errors: {"field": ["msg", ...]}
        return "; ".join(f"{k} {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in message.items())
    text = as_str(message)
    for err in data.get("errors") or []:  # GitHub validation errors
        if isinstance(err, dict) and err.get("message"):
            text += f" ({err['message']})"
    return text


def same_key(a: str, b: str) -> bool:
    """Two OpenSSH public keys are the same key whatever their comments."""
    return a.split()[:2] == b.split()[:2]
