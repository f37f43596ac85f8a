"""Errors of pipeline files: every problem carries where it is (file, line, column, path).

A pipeline file is checked as a whole and *all* its problems are reported together, so the error
raised to callers is one ``PipelineError`` holding a list of ``LocatedError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from agola.errors import BadRequest, NotExist


@attrs.frozen
class Loc:
    """Where a value sits: the file, its 1-based line/column when known, and the document path."""

    file: str = ""
    line: int | None = None
    column: int | None = None
    path: str = ""

    def prefix(self) -> str:
        where = self.file or "<pipeline>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return where


@attrs.frozen
class LocatedError:
    """One problem in a pipeline file.

    ``message`` keeps the reference's wording where there is one (tools may grep for it);
    ``hint`` says what would be right.
    """

    message: str
    loc: Loc = Loc()
    hint: str = ""

    @property
    def file(self) -> str:
        return self.loc.file

    @property
    def line(self) -> int | None:
        return self.loc.line

    @property
    def column(self) -> int | None:
        return self.loc.column

    @property
    def path(self) -> str:
        return self.loc.path

    def __str__(self) -> str:
        text = self.loc.prefix() + ": "
        if self.loc.path:
            text += self.loc.path + ": "
        text += self.message
        if self.hint:
            text += f" ({self.hint})"
        return text

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message, "file": self.loc.file, "path": self.loc.path}
        if self.loc.line is not None:
            out["line"] = self.loc.line
        if self.loc.column is not None:
            out["column"] = self.loc.column
        if self.hint:
            out["hint"] = self.hint
        return out


class PipelineError(BadRequest):
    """A pipeline file that cannot be used; ``errors`` lists every problem found."""

    def __init__(self, errors: Sequence[LocatedError], warnings: Sequence[LocatedError] = ()) -> None:
        self.errors: list[LocatedError] = list(errors)
        # What was accepted but looks wrong (unknown keys), shown by `pipeline check` with the errors.
        self.warnings: list[LocatedError] = list(warnings)
        first = str(self.errors[0]) if self.errors else "invalid pipeline file"
        more = len(self.errors) - 1
        summary = first if more <= 0 else f"{first} (and {more} more error{'s' if more > 1 else ''})"
        super().__init__(summary, details=[e.to_json() for e in self.errors])

    def setup_errors(self) -> list[str]:
        """One line per error, for the ``setup_errors`` of a "Setup Error" run."""
        return [str(e) for e in self.errors]

    def text(self) -> str:
        """Every error, one per line (what ``agola pipeline check`` prints)."""
        return "\n".join(str(e) for e in self.errors)


class PipelineNotFound(NotExist):
    """No pipeline file in the expected place."""


def by_location(errors: Sequence[LocatedError]) -> list[LocatedError]:
    """Errors in reading order: by file, line and column (those without a line last, by path)."""
    return sorted(
        errors,
        key=lambda e: (e.file, e.line is None, e.line or 0, e.column or 0, e.path),
    )


class ErrorList:
    """Collects located errors while walking a document."""

    def __init__(self) -> None:
        self.items: list[LocatedError] = []
        # Things accepted (as the reference does) but probably not meant, e.g. unknown keys.
        self.warnings: list[LocatedError] = []

    def add(self, message: str, loc: Loc, hint: str = "") -> None:
        self.items.append(LocatedError(message, loc, hint))

    def warn(self, message: str, loc: Loc, hint: str = "") -> None:
        self.warnings.append(LocatedError(message, loc, hint))

    def has_under(self, path: str) -> bool:
        """Whether an error was already reported at ``path`` or inside it."""
        return any(
            e.loc.path == path or e.loc.path.startswith((path + ".", path + "["))
            for e in self.items
        )

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise PipelineError(self.items, self.warnings)
