"""Finding, reading and evaluating a pipeline file, then parsing and validating it.

Formats, by file name under ``.agola/``, first found wins (the order of Agola ≥ 0.6, which put
Starlark first; ``.yaml`` is accepted after ``.yml``):

1. ``config.star``    Starlark, ``def main(ctx): return {...}``
2. ``config.jsonnet`` Jsonnet; a top-level function receives ``ctx``
3. ``config.json``    JSON (read as YAML, as the reference does)
4. ``config.yml``     YAML
5. ``config.yaml``    YAML

YAML and JSON are parsed in-process (fast path). Jsonnet and Starlark run in a separate Python
process with an address-space limit and a timeout (``EvalLimits``), so an endless loop or a memory
bomb ends in a clear error within seconds and never harms the caller. Files and evaluated
documents are limited to 1 MiB.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import attrs

from agola.pipeline.context import RunContext
from agola.pipeline.document import Node, from_plain, json_tabs_to_spaces, parse_yaml
from agola.pipeline.errors import ErrorList, Loc, LocatedError, PipelineError, PipelineNotFound
from agola.pipeline.parse import parse_config
from agola.pipeline.schema import ConfigFormat, PipelineConfig
from agola.pipeline.validate import validate_config

CONFIG_DIR = ".agola"
CONFIG_FILES = ("config.star", "config.jsonnet", "config.json", "config.yml", "config.yaml")
# The paths to look for in a repository, in precedence order (what the gateway fetches).
CONFIG_PATHS = tuple(f"{CONFIG_DIR}/{name}" for name in CONFIG_FILES)
MAX_CONFIG_SIZE = 1024 * 1024

_FORMATS = {
    ".star": ConfigFormat.STARLARK,
    ".jsonnet": ConfigFormat.JSONNET,
    ".json": ConfigFormat.JSON,
    ".yml": ConfigFormat.YAML,
    ".yaml": ConfigFormat.YAML,
}
_EVALUATOR = Path(__file__).with_name("_evaluator.py")

Source = Mapping[str, bytes] | str | os.PathLike[str]


@attrs.frozen
class EvalLimits:
    """Bounds for evaluating Jsonnet and Starlark."""

    timeout: float = 10.0  # seconds of wall time
    memory: int = 1024 * 1024 * 1024  # bytes of address space for the evaluator process


DEFAULT_LIMITS = EvalLimits()


def config_format(filename: str) -> ConfigFormat:
    """The format of a pipeline file from its extension."""
    fmt = _FORMATS.get(os.path.splitext(filename)[1].lower())
    if fmt is None:
        raise PipelineError(
            [
                LocatedError(
                    "unknown pipeline file format",
                    Loc(filename),
                    "use a .star, .jsonnet, .json, .yml or .yaml file",
                )
            ]
        )
    return fmt


def pick_config_file(files: Mapping[str, bytes]) -> tuple[str, bytes]:
    """The file to use among ``files`` (keyed ``.agola/config.yml`` or ``config.yml``)."""
    for path in CONFIG_PATHS:
        for key in (path, path[len(CONFIG_DIR) + 1 :]):
            if key in files:
                return path, files[key]
    raise PipelineNotFound("no pipeline file found: looked for " + ", ".join(CONFIG_PATHS))


def read_config_dir(path: str | os.PathLike[str]) -> tuple[str, bytes]:
    """Pick and read the pipeline file of a repository directory, or of its ``.agola`` dir."""
    base = Path(path)
    candidates = [base / CONFIG_DIR, base] if (base / CONFIG_DIR).is_dir() else [base]
    for directory in candidates:
        for name in CONFIG_FILES:
            file = directory / name
            if file.is_file():
                return str(file), _read_bounded(file)
    raise PipelineNotFound(f"no pipeline file found in {base}: looked for " + ", ".join(CONFIG_FILES))


def _read_bounded(file: Path) -> bytes:
    with open(file, "rb") as fh:
        data = fh.read(MAX_CONFIG_SIZE + 1)
    return data


def load_pipeline(
    source: Source, ctx: RunContext | None = None, *, limits: EvalLimits = DEFAULT_LIMITS
) -> PipelineConfig:
    """Find, evaluate, parse and validate the pipeline of a repository.

    ``source`` is either a mapping of repository paths to file contents (``.agola/config.yml``
    -> bytes; the gateway passes what it fetched) or a directory (a repository root or its
    ``.agola`` directory). Raises ``PipelineNotFound`` or ``PipelineError`` (a ``BadRequest``)
    listing every problem.
    """
    if isinstance(source, Mapping):
        filename, data = pick_config_file(source)
    else:
        filename, data = read_config_dir(source)
    return parse_pipeline(filename, data, ctx, limits=limits)


async def load_pipeline_async(
    source: Source, ctx: RunContext | None = None, *, limits: EvalLimits = DEFAULT_LIMITS
) -> PipelineConfig:
    """:func:`load_pipeline` off the event loop (evaluation may take up to ``limits.timeout``)."""
    return await asyncio.to_thread(load_pipeline, source, ctx, limits=limits)


def parse_pipeline(
    filename: str,
    data: bytes | str,
    ctx: RunContext | None = None,
    *,
    limits: EvalLimits = DEFAULT_LIMITS,
    fmt: ConfigFormat | None = None,
) -> PipelineConfig:
    """Parse and validate one pipeline file whose format comes from its name (or ``fmt``)."""
    fmt = fmt or config_format(filename)
    errors = ErrorList()
    root = read_document(filename, data, fmt, ctx or RunContext(), limits, errors.warnings)
    config = parse_config(root, filename, fmt, errors)
    validate_config(config, errors)
    errors.raise_if_any()
    return attrs.evolve(config, warnings=tuple(errors.warnings))


def read_document(
    filename: str,
    data: bytes | str,
    fmt: ConfigFormat,
    ctx: RunContext,
    limits: EvalLimits,
    warnings: list[LocatedError] | None = None,
) -> Node | None:
    """The located document tree of a file, evaluating Jsonnet/Starlark first; what is accepted
    but suspicious (a key written twice) is appended to ``warnings``."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > MAX_CONFIG_SIZE:
        raise PipelineError(
            [
                LocatedError(
                    f"config size is greater than allowed max config size: {len(raw)} > {MAX_CONFIG_SIZE}",
                    Loc(filename),
                    "pipeline files are limited to 1 MiB",
                )
            ]
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PipelineError(
            [LocatedError(f"pipeline file is not valid UTF-8: {exc.reason} at byte {exc.start}", Loc(filename))]
        ) from None
    if fmt in (ConfigFormat.JSONNET, ConfigFormat.STARLARK):
        return from_plain(json.loads(evaluate(filename, text, fmt, ctx, limits)), filename)
    if fmt is ConfigFormat.JSON and _is_json(text):
        text = json_tabs_to_spaces(text)
    return parse_yaml(text, filename, warnings)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def evaluate(filename: str, source: str, fmt: ConfigFormat, ctx: RunContext, limits: EvalLimits) -> str:
    """Run Jsonnet or Starlark in the sandbox process; the JSON text it produced."""
    request = {
        "format": "jsonnet" if fmt is ConfigFormat.JSONNET else "starlark",
        "filename": os.path.basename(filename),
        "source": source,
        "ctx": ctx.to_json(),
        "memory": limits.memory,
        "cpu": max(1, int(limits.timeout) + 1),
        "max_output": MAX_CONFIG_SIZE,
    }
    what = "jsonnet" if fmt is ConfigFormat.JSONNET else "starlark"
    try:
        proc = subprocess.run(
            [sys.executable, "-I", str(_EVALUATOR)],
            input=json.dumps(request).encode(),
            capture_output=True,
            timeout=limits.timeout,
            check=False,
            env=_evaluator_env(),
        )
    except subprocess.TimeoutExpired:
        raise _eval_error(
            filename,
            f"failed to execute {what}: evaluation did not finish within {limits.timeout:g}s",
            "look for an endless loop or a very large computation",
        ) from None
    if proc.returncode != 0 or not proc.stdout:
        raise _eval_error(filename, f"failed to execute {what}: {_death(proc.returncode, limits)}")
    answer = json.loads(proc.stdout)
    if answer["ok"]:
        return str(answer["json"])
    message = str(answer["error"]).rstrip()
    if answer.get("kind") == "size":
        raise _eval_error(filename, message, "the evaluated document is limited to 1 MiB")
    if answer.get("kind") == "memory":
        raise _eval_error(filename, f"failed to execute {what}: {_death(-signal.SIGABRT, limits)}")
    line, column = _error_position(message, os.path.basename(filename))
    raise PipelineError([LocatedError(f"failed to execute {what}: {message}", Loc(filename, line, column))])


def _evaluator_env() -> dict[str, str]:
    """Only what the interpreter may need: the evaluated file never sees the server's secrets."""
    keep = ("PATH", "LD_LIBRARY_PATH", "LANG", "LC_ALL", "TMPDIR")
    return {k: os.environ[k] for k in keep if k in os.environ}


def _eval_error(filename: str, message: str, hint: str = "") -> PipelineError:
    return PipelineError([LocatedError(message, Loc(filename), hint)])


def _death(returncode: int, limits: EvalLimits) -> str:
    if returncode in (-signal.SIGKILL, -signal.SIGXCPU):
        return f"evaluation used more than its {limits.timeout:g}s of CPU time"
    mib = limits.memory // (1024 * 1024)
    return f"evaluation ran out of memory (limit {mib} MiB) or crashed (exit status {returncode})"


def _error_position(message: str, basename: str) -> tuple[int | None, int | None]:
    """The first ``file:line:col`` of an engine's message."""
    m = re.search(re.escape(basename) + r":(\d+):(\d+)", message)
    if m:
        return int(m.group(1)), int(m.group(2))
    return None, None
