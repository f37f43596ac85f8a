"""The one rule for the names of variables and secrets: stored ones (configstore, through the
gateway) and the run variables of a direct run (``agola directrun start --var NAME=VALUE``).

A name starts with a letter or ``_`` and has only letters, digits, ``_`` and ``-``: every name
Agola accepts for a stored variable or secret (2 or more letters, digits and single inner
dashes) and the usual environment-variable spellings (``DEPLOY_PASSWORD``, ``X``), which Agola
accepted for ``--var`` but refused when stored.
"""

from __future__ import annotations

import re

from agola.errors import BadRequest

__all__ = ["VARIABLE_NAME_RULE", "check_variable_name", "is_valid_variable_name"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
MAX_LENGTH = 255
VARIABLE_NAME_RULE = "letters, digits, '_' and '-', starting with a letter or '_'"


def is_valid_variable_name(name: str) -> bool:
    return len(name) <= MAX_LENGTH and _NAME.fullmatch(name) is not None


def check_variable_name(kind: str, name: str) -> None:
    """400 unless ``name`` is a valid name for a ``kind`` ("variable", "secret")."""
    if not name:
        raise BadRequest(f"{kind} name required")
    if not is_valid_variable_name(name):
        raise BadRequest(f"invalid {kind} name {name!r}: use {VARIABLE_NAME_RULE} (at most {MAX_LENGTH})")
