"""Secrets and variables along the project group tree (spec §5.5).

A project or project group sees its own secrets and variables and those of every group above it.
Listing with ``tree`` concatenates the levels **nearest first**; ``remove_overridden`` then keeps
the first object of each name, so a nearer level overrides a farther one.

``run_variables`` computes the variables of a project's run: each (non-overridden) variable takes
its first value whose ``when`` matches the run's ref, and reads ``secret_var`` from the nearest
secret named ``secret_name`` defined at the variable's level or above (never below: a variable of a
group must not read a secret a project under it defines). Runs from pull requests opened from a
fork get no variables unless the project sets ``pass_vars_to_forked_pr``, so that an outsider's
pull request cannot print the secrets.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

import attrs

from agola.pipeline.when import match_when
from agola.services.configstore.names import is_ancestor_or_self
from agola.types.configstore import Project, SecretResponse, VariableResponse
from agola.types.when import RefType

T = TypeVar("T", SecretResponse, VariableResponse)


def _name(item: SecretResponse | VariableResponse) -> str:
    return item.secret.name if isinstance(item, SecretResponse) else item.variable.name


def tree_list(levels: Iterable[Sequence[T]]) -> list[T]:
    """Concatenate per-level lists given nearest level first (the object's own level first)."""
    out: list[T] = []
    for level in levels:
        out.extend(level)
    return out


def remove_overridden(items: Sequence[T]) -> list[T]:
    """Keep the first occurrence of each name, preserving order (nearest level wins)."""
    seen: set[str] = set()
    out: list[T] = []
    for item in items:
        name = _name(item)
        if name in seen:
            continue
        seen.add(name)
        out.append(item)
    return out


@attrs.frozen
class RunRef:
    """What a run is for, as far as variables care."""

    ref_type: str  # RefType
    ref: str
    branch: str = ""
    tag: str = ""
    # For pull request runs: whether the pull request comes from the project's own repository.
    pull_request_from_same_repo: bool = True


def resolve_variables(
    variables_tree: Sequence[VariableResponse],
    secrets_tree: Sequence[SecretResponse],
    run: RunRef,
) -> dict[str, str]:
    """The values of the variables for ``run`` (trees as listed with ``tree``, nearest first)."""
    result: dict[str, str] = {}
    for var in remove_overridden(variables_tree):
        for value in var.variable.values:
            if not match_when(value.when, run.ref_type, run.branch, run.tag, run.ref):
                continue
            secret = _visible_secret(secrets_tree, value.secret_name, var.parent_path)
            if secret is not None and value.secret_var in secret.secret.data:
                result[var.variable.name] = secret.secret.data[value.secret_var]
            # First matching value wins, even when its secret or key is missing.
            break
    return result


def _visible_secret(
    secrets_tree: Sequence[SecretResponse], name: str, variable_parent_path: str
) -> SecretResponse | None:
    for secret in secrets_tree:
        if secret.secret.name != name:
            continue
        if is_ancestor_or_self(secret.parent_path, variable_parent_path):
            return secret
    return None


def variables_allowed(project: Project, run: RunRef) -> bool:
    """The forked pull request rule: such runs get variables only if the project allows it."""
    if run.ref_type != RefType.PULL_REQUEST:
        return True
    return run.pull_request_from_same_repo or project.pass_vars_to_forked_pr


def run_variables(
    project: Project,
    variables_tree: Sequence[VariableResponse],
    secrets_tree: Sequence[SecretResponse],
    run: RunRef,
) -> dict[str, str]:
    """The variables a project's run gets (what the gateway passes to the runservice)."""
    if not variables_allowed(project, run):
        return {}
    return resolve_variables(variables_tree, secrets_tree, run)
