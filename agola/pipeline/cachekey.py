"""Cache key templates: the small, safe subset of Go text/template that cache keys use.

A key such as ``cache-{{ arch }}-{{ md5sum "go.sum" }}`` is parsed and checked when the
pipeline file is read (so a typo fails the check, not the run); it is rendered later by the
executor, inside the task, with :func:`render` / :func:`render_async`. Rendering only ever calls
the functions below; file hashing is delegated to a callable so the executor can hash files
inside the task's container.

Functions: ``md5sum "file"``, ``sha256sum "file"`` (hex digest of a file relative to the task
working dir), ``env "NAME"``, ``os``, ``arch``, ``year`` (YYYY), ``month`` (MM), ``day`` (DD),
``epoch`` (seconds since 1970) and ``unixtime`` (nanoseconds since 1970, as the reference).
Template syntax supported: text, ``{{ func "arg" }}`` actions, ``{{-``/``-}}`` whitespace trimming
and ``{{/* comments */}}``.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import attrs

MAX_RENDERED_KEY = 1024 * 1024

# name -> number of string arguments
FUNCTIONS: dict[str, int] = {
    "md5sum": 1,
    "sha256sum": 1,
    "env": 1,
    "os": 0,
    "arch": 0,
    "year": 0,
    "month": 0,
    "day": 0,
    "epoch": 0,
    "unixtime": 0,
}
FILE_FUNCTIONS = ("md5sum", "sha256sum")


class CacheKeyError(ValueError):
    pass


@attrs.frozen
class Text:
    text: str


@attrs.frozen
class Call:
    func: str
    args: tuple[str, ...] = ()


Part = Text | Call


@attrs.frozen
class CacheKeyTemplate:
    source: str
    parts: tuple[Part, ...]

    def files(self) -> list[tuple[str, str]]:
        """``(function, path)`` for every file the key hashes."""
        return [(p.func, p.args[0]) for p in self.parts if isinstance(p, Call) and p.func in FILE_FUNCTIONS]


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>"(?:[^"\\\n]|\\.)*")
      | (?P<raw>`[^`]*`)
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<other>\S+)
    )""",
    re.VERBOSE,
)
_GO_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "a": "\a", "b": "\b", "f": "\f", "v": "\v"}


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    out = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _GO_ESCAPES:
            out.append(_GO_ESCAPES[nxt])
            i += 2
        elif nxt in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[nxt]
            digits = body[i + 2 : i + 2 + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise CacheKeyError(f"invalid escape in string {literal}")
            out.append(chr(int(digits, 16)))
            i += 2 + width
        else:
            raise CacheKeyError(f"invalid escape \\{nxt} in string {literal}")
    return "".join(out)


def _parse_action(body: str, pos: int) -> Call | None:
    stripped = body.strip()
    if stripped.startswith("/*"):
        if not stripped.endswith("*/"):
            raise CacheKeyError(f"unclosed comment at offset {pos}")
        return None
    tokens: list[tuple[str, str]] = []
    for m in _TOKEN.finditer(body):
        kind = m.lastgroup or "other"
        tokens.append((kind, m.group(kind)))
    if not tokens:
        raise CacheKeyError(f"missing value for command at offset {pos}")
    kind, name = tokens[0]
    if kind != "ident":
        raise CacheKeyError(
            f"unsupported action {{{{{body}}}}} at offset {pos}: only function calls like "
            f'{{{{ md5sum "file" }}}} are allowed'
        )
    if name not in FUNCTIONS:
        raise CacheKeyError(
            f'function "{name}" not defined (available: {", ".join(sorted(FUNCTIONS))})'
        )
    args = []
    for kind, tok in tokens[1:]:
        if kind == "str":
            args.append(_unquote(tok))
        elif kind == "raw":
            args.append(tok[1:-1])
        else:
            raise CacheKeyError(f"function {name}: arguments must be quoted strings, got {tok}")
    if len(args) != FUNCTIONS[name]:
        raise CacheKeyError(
            f"wrong number of args for {name}: want {FUNCTIONS[name]} got {len(args)}"
        )
    return Call(name, tuple(args))


def parse(source: str) -> CacheKeyTemplate:
    """Parse and check a cache key template; ``CacheKeyError`` says what is wrong."""
    parts: list[Part] = []
    text: list[str] = []
    pos = 0
    while True:
        start = source.find("{{", pos)
        if start < 0:
            text.append(source[pos:])
            break
        chunk = source[pos:start]
        body_start = start + 2
        if source.startswith("{{- ", start) or source.startswith("{{-\t", start) or source.startswith("{{-\n", start):
            chunk = chunk.rstrip(" \t\r\n")
            body_start = start + 3
        text.append(chunk)
        end = source.find("}}", body_start)
        if end < 0:
            raise CacheKeyError(f"unclosed action at offset {start}")
        body = source[body_start:end]
        trim_right = False
        if body.endswith(" -") or body.endswith("\t-") or body.endswith("\n-"):
            body = body[:-1]
            trim_right = True
        call = _parse_action(body, start)
        if call is not None:
            if any(text):
                parts.append(Text("".join(text)))
            text = []
            parts.append(call)
        pos = end + 2
        if trim_right:
            while pos < len(source) and source[pos] in " \t\r\n":
                pos += 1
    if any(text):
        parts.append(Text("".join(text)))
    return CacheKeyTemplate(source, tuple(parts))


@attrs.frozen
class RenderEnv:
    """What a rendering may see besides files."""

    environment: Mapping[str, str] = attrs.Factory(dict)
    now: _dt.datetime | None = None
    os: str = "linux"
    arch: str = "amd64"


def _simple(call: Call, env: RenderEnv) -> str:
    now = env.now or _dt.datetime.now(_dt.UTC)
    if call.func == "env":
        return env.environment.get(call.args[0], "")
    if call.func == "os":
        return env.os
    if call.func == "arch":
        return env.arch
    if call.func == "year":
        return f"{now.year:04d}"
    if call.func == "month":
        return f"{now.month:02d}"
    if call.func == "day":
        return f"{now.day:02d}"
    if call.func == "epoch":
        return str(int(now.timestamp()))
    if call.func == "unixtime":
        return str(int(now.timestamp()) * 1_000_000_000 + now.microsecond * 1000)
    raise CacheKeyError(f'function "{call.func}" not defined')  # pragma: no cover


def _check_size(out: list[str]) -> None:
    if sum(len(s) for s in out) > MAX_RENDERED_KEY:
        raise CacheKeyError("rendered cache key is larger than 1 MiB")


def render(
    template: CacheKeyTemplate | str,
    *,
    hash_file: Callable[[str, str], str],
    env: RenderEnv = RenderEnv(),
) -> str:
    """Render a key. ``hash_file(function, path)`` returns the hex digest (``md5sum``/``sha256sum``)."""
    tpl = parse(template) if isinstance(template, str) else template
    out: list[str] = []
    for part in tpl.parts:
        if isinstance(part, Text):
            out.append(part.text)
        elif part.func in FILE_FUNCTIONS:
            out.append(hash_file(part.func, part.args[0]))
        else:
            out.append(_simple(part, env))
        _check_size(out)
    return "".join(out)


async def render_async(
    template: CacheKeyTemplate | str,
    *,
    hash_file: Callable[[str, str], Awaitable[str] | str],
    env: RenderEnv = RenderEnv(),
) -> str:
    """:func:`render` with a hashing callable that may be a coroutine function."""
    tpl = parse(template) if isinstance(template, str) else template
    out: list[str] = []
    for part in tpl.parts:
        if isinstance(part, Text):
            out.append(part.text)
        elif part.func in FILE_FUNCTIONS:
            digest: Any = hash_file(part.func, part.args[0])
            if inspect.isawaitable(digest):
                digest = await digest
            out.append(str(digest))
        else:
            out.append(_simple(part, env))
        _check_size(out)
    return "".join(out)


class KeyContextLike(Protocol):
    """The executor's view of a task for key rendering (``agola.services.executor.steps.KeyContext``)."""

    env: Mapping[str, str]
    arch: str

    def __call__(self, algo: str, path: str) -> Awaitable[str]: ...


async def render_for_task(template: str, ctx: KeyContextLike) -> str:
    """Render with an executor key context: ``await ctx("md5" | "sha256", path)`` hashes a file
    inside the task's container; ``ctx.env`` and ``ctx.arch`` feed ``env`` and ``arch``.

    Matches the executor's ``RenderKey`` signature, so it can be injected as is.
    """
    return await render_async(
        template,
        hash_file=lambda func, path: ctx(func[: -len("sum")], path),
        env=RenderEnv(environment=dict(ctx.env), arch=ctx.arch),
    )
