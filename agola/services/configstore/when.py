"""Matching a stored ``when`` (a variable value's condition) against a run's git ref (spec §2.2).

The reference's ``MatchWhen`` on the configstore's stored form (``agola.types.configstore.When``).
Regular expressions are compiled by the pipeline package (``agola.pipeline.when``), which accepts
exactly the RE2 syntax the reference accepts, so a variable's ``when`` and a pipeline's ``when``
behave the same.
"""

from __future__ import annotations

import enum
import re
from typing import Sequence

from agola.pipeline.when import RegexpError, compile_condition_regexp
from agola.types.configstore import When, WhenCondition, WhenConditionType

__all__ = ["RefType", "RegexpError", "compile_regexp", "match_when"]


class RefType(enum.StrEnum):
    BRANCH = "branch"
    TAG = "tag"
    PULL_REQUEST = "pull_request"


def compile_regexp(pattern: str) -> re.Pattern[str]:
    """Compile a condition regexp (RE2 syntax); ``RegexpError`` if the reference would refuse it."""
    return compile_condition_regexp(pattern)


def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return compile_condition_regexp(pattern)
    except RegexpError:
        # A stored regexp was validated when written; an uncompilable one never matches.
        return None


def _match_any(conditions: Sequence[WhenCondition], value: str) -> bool:
    for cond in conditions:
        if cond.type == WhenConditionType.SIMPLE and cond.match == value:
            return True
        if cond.type == WhenConditionType.REGEXP:
            regexp = _compiled(cond.match)
            # Unanchored "search" semantics, like Go's MatchString.
            if regexp is not None and regexp.search(value):
                return True
    return False


def match_when(when: When | None, ref_type: str, branch: str, tag: str, ref: str) -> bool:
    """Whether a run on this ref matches ``when``; no ``when`` matches everything.

    Branch conditions only apply to branch runs with a branch, tag conditions to tag runs with a
    tag; ref conditions always apply. Includes first, then excludes override.
    """
    if when is None:
        return True
    result = False
    if ref_type == RefType.BRANCH and when.branch is not None and branch:
        result = _match_any(when.branch.include, branch)
        if _match_any(when.branch.exclude, branch):
            result = False
    if ref_type == RefType.TAG and when.tag is not None and tag:
        result = _match_any(when.tag.include, tag)
        if _match_any(when.tag.exclude, tag):
            result = False
    if when.ref is not None:
        if _match_any(when.ref.include, ref):
            result = True
        if _match_any(when.ref.exclude, ref):
            result = False
    return result
