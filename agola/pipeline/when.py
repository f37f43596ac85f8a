"""``when`` conditions: which refs a run, task or step applies to (spec §2.2 ``MatchWhen``).

The one matcher of agola: for a pipeline file's ``when`` (``agola.pipeline.schema.When``) and for
a stored variable value's ``when`` (``agola.types.configstore.When``), which have the same shape
(``WhenLike``), so both behave the same.

Regular expressions are RE2, as in the reference (``agola.util.userregex``): matching is linear
in the input whatever the pattern, and a file is accepted exactly when the reference accepts it.
Matching is a *search* (unanchored).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from agola.types.when import RefType, WhenConditionType
from agola.util.userregex import UserRegex, UserRegexError, compile_user_regex

__all__ = [
    "RegexpError",
    "WhenLike",
    "compile_condition_regexp",
    "condition_matches",
    "match_when",
]


class WhenConditionLike(Protocol):
    @property
    def type(self) -> str: ...  # a WhenConditionType value

    @property
    def match(self) -> str: ...


class WhenConditionsLike(Protocol):
    @property
    def include(self) -> Sequence[WhenConditionLike]: ...

    @property
    def exclude(self) -> Sequence[WhenConditionLike]: ...


class WhenLike(Protocol):
    """A ``when``: the pipeline file's parsed form or the configstore's stored form."""

    @property
    def branch(self) -> WhenConditionsLike | None: ...

    @property
    def tag(self) -> WhenConditionsLike | None: ...

    @property
    def ref(self) -> WhenConditionsLike | None: ...


# The error of a pattern RE2 refuses (a ``BadRequest`` and a ``ValueError``), Go's wording.
RegexpError = UserRegexError


def compile_condition_regexp(pattern: str) -> UserRegex:
    """Compile a ``/.../`` or ``#...#`` condition body with RE2; ``RegexpError`` if RE2 refuses it."""
    return compile_user_regex(pattern)


def condition_matches(cond: WhenConditionLike, value: str) -> bool:
    """A simple condition is an exact match, a regexp one an unanchored search (Go's
    ``MatchString``). An invalid regexp or an unknown condition type never matches: the pipeline
    file's are refused when parsed, a stored variable's when written."""
    if cond.type == WhenConditionType.SIMPLE:
        return cond.match == value
    if cond.type == WhenConditionType.REGEXP:
        try:
            regexp = compile_condition_regexp(cond.match)
        except RegexpError:
            return False
        return regexp.search(value) is not None
    return False


def _any(conds: Iterable[WhenConditionLike], value: str) -> bool:
    return any(condition_matches(c, value) for c in conds)


def _apply(conds: WhenConditionsLike, value: str, current: bool) -> bool:
    """Includes can turn the result on; excludes then turn it off."""
    if _any(conds.include, value):
        current = True
    if _any(conds.exclude, value):
        current = False
    return current


def match_when(when: WhenLike | None, ref_type: str, branch: str, tag: str, ref: str) -> bool:
    """True when a run/task/step with this ``when`` applies to the given ref.

    No ``when`` matches everything. Otherwise the result starts false; the branch (or tag)
    conditions only count for a branch (or tag) ref; ``ref`` conditions count for every ref
    type (pull requests can only be selected this way). An exclude-only condition never
    matches, as in the reference.
    """
    if when is None:
        return True
    result = False
    if ref_type == RefType.BRANCH and when.branch is not None and branch != "":
        result = _apply(when.branch, branch, result)
    if ref_type == RefType.TAG and when.tag is not None and tag != "":
        result = _apply(when.tag, tag, result)
    if when.ref is not None:
        result = _apply(when.ref, ref, result)
    return result
