"""The typed error family shared by every role, and its single mapping to HTTP.

Server side, handlers raise these and the error middleware (``agola.util.http``) turns them into a
response ``{"message": ..., "code": ...}`` with the status below. Client side, ``from_response``
rebuilds the same kind from such a body, so a remote ``NotExist`` stays a ``NotExist``.

Each class also inherits the closest standard exception, so callers may catch either.
"""

from __future__ import annotations

from typing import Any, ClassVar


class AgolaError(Exception):
    """Base of every error agola raises on purpose."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"

    def __init__(self, message: str = "", *, details: Any = None) -> None:
        super().__init__(message or self.code)
        self.message = message or self.code
        # Extra structured information safe to show the caller (e.g. a list of located errors).
        self.details = details

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.details is not None:
            body["details"] = self.details
        return body


class BadRequest(AgolaError, ValueError):
    status = 400
    code = "bad_request"


class Unauthorized(AgolaError, PermissionError):
    status = 401
    code = "unauthorized"


class Forbidden(AgolaError, PermissionError):
    status = 403
    code = "forbidden"


class NotExist(AgolaError, LookupError):
    status = 404
    code = "not_exist"


class AlreadyExists(AgolaError):
    status = 409
    code = "already_exists"


class Conflict(AgolaError):
    """Optimistic concurrency failure (a change group or revision moved under us)."""

    status = 409
    code = "conflict"


class PayloadTooLarge(AgolaError):
    status = 413
    code = "payload_too_large"


class Unavailable(AgolaError, ConnectionError):
    """A dependency (etcd, object storage, another role) cannot be reached right now."""

    status = 503
    code = "unavailable"


class Internal(AgolaError):
    status = 500
    code = "internal"


_BY_CODE: dict[str, type[AgolaError]] = {
    cls.code: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotExist,
        AlreadyExists,
        Conflict,
        PayloadTooLarge,
        Unavailable,
        Internal,
    )
}

_BY_STATUS: dict[int, type[AgolaError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotExist,
    409: Conflict,
    413: PayloadTooLarge,
    503: Unavailable,
}

INTERNAL_MESSAGE = "internal server error"


def http_status(err: BaseException) -> int:
    """The HTTP status for any exception; untyped errors are 500."""
    return err.status if isinstance(err, AgolaError) else 500


def public_body(err: BaseException) -> dict[str, Any]:
    """The error body a caller may see. Untyped and internal errors never leak their text."""
    if isinstance(err, AgolaError) and not isinstance(err, Internal):
        return err.to_body()
    return {"message": INTERNAL_MESSAGE, "code": Internal.code}


def from_response(status: int, body: Any, reason: str = "") -> AgolaError:
    """Rebuild a typed error from an HTTP error response (its status and decoded JSON body)."""
    message = reason or f"HTTP {status}"
    code = ""
    details = None
    if isinstance(body, dict):
        message = str(body.get("message") or message)
        code = str(body.get("code") or "")
        details = body.get("details")
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status) or Internal
    return cls(message, details=details)
