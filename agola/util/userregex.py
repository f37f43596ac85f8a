"""Regular expressions written by users, compiled with RE2 (``google-re2``).

Every pattern that comes from outside (a pipeline file's ``when``, a stored variable's ``when``,
the pull request ref regexps of a run creation) goes through ``compile_user_regex``: RE2 matches in
time linear in the input, so a pattern like ``(a+)+b`` cannot stall the event loop as Python's
backtracking ``re`` does, and the syntax is the one Agola (Go's ``regexp``) accepts: no
look-arounds, no back-references. Patterns RE2 refuses raise ``UserRegexError`` with Go's wording
(``error parsing regexp: missing closing ): `(abc` ``).

Our own fixed patterns keep using ``re``.
"""

from __future__ import annotations

import functools
from typing import Protocol

import re2

from agola.errors import BadRequest

__all__ = ["UserRegex", "UserRegexError", "UserRegexMatch", "compile_user_regex"]


class UserRegexMatch(Protocol):
    def group(self, index: int = 0, /) -> str | None: ...

    def groups(self) -> tuple[str | None, ...]: ...


class UserRegex(Protocol):
    """What callers use of a compiled pattern (the ``re.Pattern`` methods of the same names)."""

    @property
    def pattern(self) -> str: ...

    def search(self, text: str) -> UserRegexMatch | None: ...

    def match(self, text: str) -> UserRegexMatch | None: ...

    def fullmatch(self, text: str) -> UserRegexMatch | None: ...


class UserRegexError(BadRequest):
    """A pattern RE2 refuses. ``syntax_error`` is Go's ``regexp/syntax`` error text, ``expr`` the
    part of the pattern it is about (``code`` stays the HTTP error code of ``BadRequest``)."""

    def __init__(self, pattern: str, syntax_error: str, expr: str) -> None:
        self.pattern = pattern
        self.syntax_error = syntax_error
        self.expr = expr
        super().__init__(f"error parsing regexp: {syntax_error}: `{expr}`")


# RE2's C++ error texts -> Go's regexp/syntax ErrorCode texts (the same codes, other words).
_GO_CODES = {
    "missing )": "missing closing )",
    "missing ]": "missing closing ]",
    "unexpected )": "unexpected )",
    "trailing \\": "trailing backslash at end of expression",
    "no argument for repetition operator": "missing argument to repetition operator",
    "bad repetition operator": "invalid nested repetition operator",
    "invalid repetition size": "invalid repeat count",
    "invalid perl operator": "invalid or unsupported Perl syntax",
    "invalid named capture group": "invalid named capture",
    "invalid escape sequence": "invalid escape sequence",
    "invalid character class": "invalid character class",
    "invalid character class range": "invalid character class range",
    "invalid UTF-8": "invalid UTF-8",
    "bad nesting depth": "expression nests too deeply",
    "pattern too large - compile failed": "expression too large",
    "pattern too large - reverse compile failed": "expression too large",
}


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # RE2 would print each refused pattern on stderr
    return options


_OPTIONS = _options()


@functools.lru_cache(maxsize=1024)
def compile_user_regex(pattern: str) -> UserRegex:
    """Compile ``pattern`` with RE2; ``UserRegexError`` (a ``BadRequest``) if RE2 refuses it."""
    try:
        compiled: UserRegex = re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        raise _go_error(pattern, exc) from None
    return compiled


def _go_error(pattern: str, exc: Exception) -> UserRegexError:
    raw = exc.args[0] if exc.args else ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    code, sep, expr = text.partition(": ")
    if code == "trailing \\":  # RE2 gives no expression; Go quotes an empty one
        return UserRegexError(pattern, _GO_CODES[code], "")
    if not sep:
        return UserRegexError(pattern, _GO_CODES.get(text, text or "invalid regexp"), pattern)
    return UserRegexError(pattern, _GO_CODES.get(code, code), expr)
