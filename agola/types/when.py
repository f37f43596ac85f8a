"""The vocabulary of ``when`` conditions (spec §2.2), shared by the pipeline file
(``agola.pipeline.schema``), the configstore's stored variables (``agola.types.configstore``) and
the gateway's run creation: the kinds of git ref a run is for, and the kinds of condition.

The matcher itself is ``agola.pipeline.when.match_when``.
"""

from __future__ import annotations

import enum

__all__ = ["RefType", "WhenConditionType"]


class RefType(enum.StrEnum):
    """The kind of git ref a run is started for (also its ``ref_type`` annotation)."""

    BRANCH = "branch"
    TAG = "tag"
    PULL_REQUEST = "pull_request"


class WhenConditionType(enum.StrEnum):
    SIMPLE = "simple"
    REGEXP = "regexp"
