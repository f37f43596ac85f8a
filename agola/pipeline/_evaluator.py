"""Sandboxed evaluation of a Jsonnet or Starlark pipeline file (run as a separate process).

Started by ``agola.pipeline.load`` as ``python -I _evaluator.py`` with limits on address space
and CPU time, so an infinite loop or a memory bomb kills only this process. It imports nothing
from agola. Protocol: one JSON request on stdin
``{"format", "filename", "source", "ctx", "memory", "cpu", "max_output"}``, one JSON answer on
the original stdout: ``{"ok": true, "json": "<document>"}`` or
``{"ok": false, "error": "...", "kind": "..."}``. Whatever the script prints goes nowhere.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from typing import Any

# The decoded JSON request (see the protocol above).
Request = dict[str, Any]


def _limit(memory: int, cpu: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _refuse_import(base: str, rel: str) -> tuple[str, bytes]:
    raise RuntimeError("imports are not allowed in pipeline files: " + rel)


def _jsonnet(req: Request) -> str:
    import _jsonnet

    text: str = _jsonnet.evaluate_snippet(
        req["filename"],
        req["source"],
        tla_codes={"ctx": json.dumps(req["ctx"])},
        import_callback=_refuse_import,
        max_stack=500,
    )
    return text


class _Fail(Exception):
    pass


_FUNCTION = object()


def _check_keys(value: object) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise _Fail("cannot convert non-string dict key to JSON")
            _check_keys(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_keys(v)
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        raise _Fail(f"cannot convert starlark type {type(value).__name__!r} to JSON")


_TAB = 8  # go.starlark.net: a tab in indentation advances to the next multiple of 8 columns


def _expand_tabs(source: str) -> tuple[str, dict[int, str]]:
    """The source with its tabs outside string literals made spaces, as go.starlark.net reads
    them (the Rust engine refuses tabs); and, per 1-based line whose leading whitespace changed
    width, that original whitespace (to give error columns back in the file's own terms).

    A tab in a line's leading whitespace advances to the next multiple of 8 columns; any other
    tab outside a string is one space (whitespace there only separates tokens, same width).
    """
    out: list[str] = []
    changed: dict[int, str] = {}
    quote = ""  # the open string's delimiter: ', ", ''' or """
    i, line, n = 0, 1, len(source)
    at_line_start = True
    while i < n:
        if at_line_start and not quote:
            j = i
            while j < n and source[j] in " \t":
                j += 1
            lead = source[i:j]
            width = _indent_width(lead)
            out.append(" " * width)
            if "\t" in lead:
                changed[line] = lead
            i, at_line_start = j, False
            continue
        ch = source[i]
        if quote:
            if ch == "\\":
                out.append(source[i : i + 2])
                line += source[i : i + 2].count("\n")
                i += 2
                continue
            if source.startswith(quote, i):
                out.append(quote)
                i += len(quote)
                quote = ""
                continue
            if ch == "\n" and len(quote) == 1:
                quote = ""  # an unterminated string: the engine reports it
        elif ch == "#":
            end = source.find("\n", i)
            end = n if end < 0 else end
            out.append(source[i:end].replace("\t", " "))
            i = end
            continue
        elif ch in "'\"":
            quote = ch * 3 if source.startswith(ch * 3, i) else ch
            out.append(quote)
            i += len(quote)
            continue
        elif ch == "\t":
            ch = " "
        out.append(ch)
        if ch == "\n":
            line += 1
            at_line_start = not quote  # inside a '''string''' the tabs are its text
        i += 1
    return "".join(out), changed


def _indent_width(lead: str) -> int:
    col = 0
    for ch in lead:
        col = col + _TAB - col % _TAB if ch == "\t" else col + 1
    return col


def _original_column(lead: str, column: int) -> int:
    """The 1-based column in the file of the 1-based ``column`` of the expanded line."""
    width = _indent_width(lead)
    if column > width:
        return column - width + len(lead)
    col = 0
    for index, ch in enumerate(lead):
        col = col + _TAB - col % _TAB if ch == "\t" else col + 1
        if column <= col:
            return index + 1
    return len(lead) + 1


def _restore_positions(message: str, filename: str, changed: dict[int, str]) -> str:
    """Error positions (``file:line:col``) as go.starlark.net gives them: a tab is one column."""
    if not changed:
        return message
    import re

    def fix(m: re.Match[str]) -> str:
        line, column = int(m.group(1)), int(m.group(2))
        if line in changed:
            column = _original_column(changed[line], column)
        return f"{filename}:{line}:{column}"

    return re.sub(re.escape(filename) + r":(\d+):(\d+)", fix, message)


def _starlark(req: Request) -> str:
    source, changed = _expand_tabs(req["source"])
    try:
        return _run_starlark(req, source)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - the engine's message, with the file's own columns
        raise _Fail(_restore_positions(str(exc), req["filename"], changed)) from None


def _run_starlark(req: Request, source: str) -> str:
    import starlark as sl

    ast = sl.parse(req["filename"], source)
    module = sl.Module()
    # The reference gives Starlark its standard library plus print (output discarded).
    sl.eval(module, ast, sl.Globals.extended_by([sl.LibraryExtension.Print]))
    try:
        main = module["main"]
    except sl.StarlarkError:
        # Functions cannot be converted to Python values: this is what we hope for.
        main = _FUNCTION
    if main is None:
        raise _Fail("no main function in starlark config")
    if main is not _FUNCTION:
        raise _Fail("main in starlark config is not a function")
    frozen = module.freeze()
    result = frozen.call("main", dict(req["ctx"]))
    if not isinstance(result, dict):
        raise _Fail("wrong starlark output, must be a dict")
    _check_keys(result)
    return json.dumps(result)


def main() -> None:
    out = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    req = json.loads(sys.stdin.read())
    _limit(req["memory"], req["cpu"])
    try:
        if req["format"] == "jsonnet":
            text = _jsonnet(req)
        else:
            text = _starlark(req)
        if len(text.encode()) > req["max_output"]:
            answer = {
                "ok": False,
                "kind": "size",
                "error": "config size is greater than allowed max config size: "
                f"{len(text.encode())} > {req['max_output']}",
            }
        else:
            answer = {"ok": True, "json": text}
    except MemoryError:
        answer = {"ok": False, "kind": "memory", "error": "out of memory"}
    except _Fail as exc:
        answer = {"ok": False, "kind": "eval", "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - the engines raise RuntimeError / StarlarkError with their message
        answer = {"ok": False, "kind": "eval", "error": str(exc)}
    out.write(json.dumps(answer))
    out.flush()


if __name__ == "__main__":
    main()
