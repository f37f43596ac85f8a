"""Reads the expectations written at the top of each corpus file (or in ``<file>.expect``).

Directives, one per comment line (``# name: value``):

* ``ctx: branch=B | tag=T | ref=R [commit_sha=S]`` the run context (default branch master)
* ``vars: NAME=VALUE ...`` run variables; ``message: TEXT`` the commit message (``\\n`` escapes)
* ``error: PATH [@LINE:COL] | TEXT`` an expected error (in order; ``-`` = no path); when present
  the file must be rejected with exactly these errors, each containing TEXT
* ``warning: PATH [@LINE:COL] | TEXT`` an expected warning of an accepted file (in order; an
  accepted file must have exactly the warnings listed)
* ``runs: A,B`` the runs created; ``levels: RUN: task=level ...``; ``skip: RUN: task,...``
* ``steps: RUN/TASK: type,...``; ``env: RUN/TASK: K=V,...``; ``shell: RUN/TASK: value``
* ``depends: RUN/TASK: parent=cond+cond ...``; ``auth: RUN/TASK: registry=user:password ...``
* ``timeout: RUN/TASK: NANOSECONDS`` the task's timeout in the run config (0 = none)
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs

from agola.pipeline import RunContext

CORPUS = Path(__file__).with_name("corpus")
CONFIG_EXTS = (".yml", ".yaml", ".json", ".jsonnet", ".star")
_DIRECTIVE = re.compile(r"^(?:#|//)\s*(ctx|vars|message|error|warning|runs|levels|skip|steps|env|shell|depends|auth|timeout):\s?(.*)$")


@attrs.frozen
class ExpectedError:
    path: str
    line: int | None
    column: int | None
    text: str


@attrs.define
class Case:
    file: Path
    ctx: RunContext = RunContext.for_branch("master")
    variables: dict[str, str] = attrs.Factory(dict)
    message: str = ""
    errors: list[ExpectedError] = attrs.Factory(list)
    warnings: list[ExpectedError] = attrs.Factory(list)
    checks: list[tuple[str, str]] = attrs.Factory(list)  # (directive, value)

    @property
    def id(self) -> str:
        return self.file.name


def corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.iterdir() if p.suffix in CONFIG_EXTS)


def load_case(file: Path) -> Case:
    header = file.with_name(file.name + ".expect")
    text = header.read_text() if header.exists() else file.read_text(errors="replace")
    case = Case(file)
    for raw in text.splitlines():
        m = _DIRECTIVE.match(raw.strip())
        if not m:
            continue
        name, value = m.group(1), m.group(2).strip()
        if name == "ctx":
            case.ctx = _ctx(value)
        elif name == "vars":
            case.variables = dict(item.split("=", 1) for item in value.split())
        elif name == "message":
            case.message = value.replace("\\n", "\n")
        elif name == "error":
            case.errors.append(_error(value))
        elif name == "warning":
            case.warnings.append(_error(value))
        else:
            case.checks.append((name, value))
    return case


def _ctx(value: str) -> RunContext:
    fields = dict(item.split("=", 1) for item in value.split())
    sha = fields.get("commit_sha", "")
    if "tag" in fields:
        return RunContext.for_tag(fields["tag"], sha)
    if "ref" in fields:
        return RunContext.for_ref(fields["ref"], sha)
    return RunContext.for_branch(fields.get("branch", "master"), sha)


def _error(value: str) -> ExpectedError:
    where, _, text = value.partition(" | ")
    parts = where.split()
    path = "" if parts[0] == "-" else parts[0]
    line = column = None
    if len(parts) > 1 and parts[1].startswith("@"):
        line_s, column_s = parts[1][1:].split(":")
        line, column = int(line_s), int(column_s)
    return ExpectedError(path, line, column, text.strip())
