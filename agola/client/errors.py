"""Errors raised by :class:`agola.client.GatewayClient`.

A small family of its own (the client package imports nothing from the rest of ``agola``), one
class per status the gateway answers, built from the error body ``{"message", "code"}``. Each also
inherits the closest standard exception, so callers may catch either (``NotExist`` is a
``LookupError``, ``Unavailable`` a ``ConnectionError``).
"""

from __future__ import annotations

from typing import Any, ClassVar


class ClientError(Exception):
    """A request to the gateway failed. ``message`` is the server's text, fit to show a user."""

    status: ClassVar[int] = 0
    default_code: ClassVar[str] = "error"

    def __init__(self, message: str, *, status: int | None = None, code: str = "", details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = status if status is not None else self.status
        self.code = code or self.default_code
        self.details = details

    def __str__(self) -> str:
        return self.message


class BadRequest(ClientError, ValueError):
    status = 400
    default_code = "bad_request"


class Unauthorized(ClientError, PermissionError):
    status = 401
    default_code = "unauthorized"


class Forbidden(ClientError, PermissionError):
    status = 403
    default_code = "forbidden"


class NotExist(ClientError, LookupError):
    status = 404
    default_code = "not_exist"


class Conflict(ClientError):
    """409: the object changed under us, or (``AlreadyExists``) it exists already."""

    status = 409
    default_code = "conflict"


class AlreadyExists(Conflict):
    default_code = "already_exists"


class PayloadTooLarge(ClientError):
    status = 413
    default_code = "payload_too_large"


class Internal(ClientError):
    status = 500
    default_code = "internal"


class Unavailable(ClientError, ConnectionError):
    """503, or the gateway could not be reached at all (``http_status`` is then 0)."""

    status = 503
    default_code = "unavailable"


_BY_CODE: dict[str, type[ClientError]] = {
    c.default_code: c
    for c in (BadRequest, Unauthorized, Forbidden, NotExist, Conflict, AlreadyExists, PayloadTooLarge, Internal, Unavailable)
}
_BY_STATUS: dict[int, type[ClientError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotExist,
    409: Conflict,
    413: PayloadTooLarge,
    417: PayloadTooLarge,  # the reference gateway's answer to an oversized request
    500: Internal,
    502: Unavailable,
    503: Unavailable,
    504: Unavailable,
}


def error_from_response(status: int, body: Any, reason: str = "") -> ClientError:
    """The typed error for an HTTP error answer (status and decoded JSON body, or None)."""
    message = ""
    code = ""
    details = None
    if isinstance(body, dict):
        message = str(body.get("message") or "")
        code = str(body.get("code") or "")
        details = body.get("details")
    if not message:
        message = reason or f"HTTP {status}"
    cls = _BY_STATUS.get(status)
    by_code = _BY_CODE.get(code)
    # The code refines the status (409 already_exists vs conflict) but never contradicts it.
    if by_code is not None and (cls is None or issubclass(by_code, cls)):
        cls = by_code
    if cls is None:
        cls = BadRequest if 400 <= status < 500 else Internal
    return cls(message, status=status, code=code, details=details)
