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


def _starlark(req: Request) -> str:
    import starlark as sl

    ast = sl.parse(req["filename"], req["source"])
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
