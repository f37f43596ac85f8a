"""Secrets and variables of projects and project groups (spec §6.2, §5.5).

Reading needs the parent to be visible to the caller; writing needs project ownership of the
parent. Secret values are never returned. ``tree`` lists the levels above too (nearest first) and
``removeoverridden`` keeps the nearest object of each name.
"""

from __future__ import annotations

from typing import Any

import attrs

from agola.errors import BadRequest
from agola.pipeline.when import RegexpError, compile_condition_regexp
from agola.services.configstore.names import is_ancestor_or_self
from agola.services.configstore.tree import remove_overridden
from agola.services.gateway.actions import Services
from agola.services.gateway.auth import Identity
from agola.services.gateway.permissions import can_view, check_project_owner, deny, require_user
from agola.types.configstore import (
    ProjectGroupResponse,
    ProjectResponse,
    Secret,
    SecretResponse,
    SecretType,
    Variable,
    VariableResponse,
    VariableValue,
    When,
    WhenCondition,
    WhenConditions,
    WhenConditionType,
)

PARENT_TYPES = ("project", "projectgroup")


@attrs.frozen
class VariableWithMatches:
    """A variable and, per value, the parent path of the secret it would read ("" if none)."""

    variable: VariableResponse
    matching_secret_parent_paths: list[str]


async def _parent(svc: Services, parent_type: str, ref: str) -> ProjectResponse | ProjectGroupResponse:
    if parent_type not in PARENT_TYPES:
        raise BadRequest(f"invalid parent type {parent_type!r}")
    if parent_type == "project":
        return await svc.configstore.get_project(ref)
    return await svc.configstore.get_project_group(ref)


async def _check_view(svc: Services, ident: Identity, parent_type: str, ref: str) -> None:
    require_user(ident)
    p = await _parent(svc, parent_type, ref)
    if not await can_view(svc.configstore, ident, p.global_visibility, p.owner_type, p.owner_id):
        raise deny(ident, f"see this {parent_type}")


async def _check_owner(svc: Services, ident: Identity, parent_type: str, ref: str) -> None:
    require_user(ident)
    p = await _parent(svc, parent_type, ref)
    await check_project_owner(svc.configstore, ident, p.owner_type, p.owner_id,
                              f"change the secrets and variables of this {parent_type}")


# --- secrets ------------------------------------------------------------------------------------


async def list_secrets(svc: Services, ident: Identity, parent_type: str, ref: str, tree: bool,
                       remove_overridden_: bool) -> list[SecretResponse]:
    await _check_view(svc, ident, parent_type, ref)
    secrets: list[SecretResponse] = await svc.configstore.get_secrets(parent_type, ref, tree)
    return remove_overridden(secrets) if remove_overridden_ else secrets


def _secret(name: str, type_: str, data: Any) -> Secret:
    if data is not None and not isinstance(data, dict):
        raise BadRequest("secret data must be an object of strings")
    for key, value in (data or {}).items():
        # A number, a list or an object would reach steps as Python's rendering of it.
        if not isinstance(value, str):
            raise BadRequest(f"secret data: the value of {key!r} must be a string, not {_json_kind(value)}")
    return Secret(name=name, type=type_ or SecretType.INTERNAL, data=dict(data or {}))


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "a list" if isinstance(value, list) else "an object"


async def create_secret(svc: Services, ident: Identity, parent_type: str, ref: str, name: str, type_: str,
                        data: Any) -> Secret:
    await _check_owner(svc, ident, parent_type, ref)
    return await svc.configstore.create_secret(parent_type, ref, _secret(name, type_, data))


async def update_secret(svc: Services, ident: Identity, parent_type: str, ref: str, secret_name: str, name: str,
                        type_: str, data: Any) -> Secret:
    await _check_owner(svc, ident, parent_type, ref)
    return await svc.configstore.update_secret(parent_type, ref, secret_name, _secret(name or secret_name, type_, data))


async def delete_secret(svc: Services, ident: Identity, parent_type: str, ref: str, name: str) -> None:
    await _check_owner(svc, ident, parent_type, ref)
    await svc.configstore.delete_secret(parent_type, ref, name)


# --- variables ----------------------------------------------------------------------------------


async def list_variables(svc: Services, ident: Identity, parent_type: str, ref: str, tree: bool,
                         remove_overridden_: bool) -> list[VariableWithMatches]:
    await _check_view(svc, ident, parent_type, ref)
    variables: list[VariableResponse] = await svc.configstore.get_variables(parent_type, ref, tree)
    if remove_overridden_:
        variables = remove_overridden(variables)
    # Secrets are looked up from the requested level upwards, as at run creation.
    secrets: list[SecretResponse] = await svc.configstore.get_secrets(parent_type, ref, True)
    out = []
    for var in variables:
        paths = []
        for value in var.variable.values:
            match = next((s for s in secrets if s.secret.name == value.secret_name
                          and is_ancestor_or_self(s.parent_path, var.parent_path)), None)
            paths.append(match.parent_path if match else "")
        out.append(VariableWithMatches(var, paths))
    return out


def _variable(name: str, values: Any) -> Variable:
    if not isinstance(values, list):
        raise BadRequest("variable values must be a list")
    parsed = []
    for i, raw in enumerate(values):
        if not isinstance(raw, dict):
            raise BadRequest(f"values[{i}]: expected an object")
        parsed.append(VariableValue(secret_name=str(raw.get("secret_name") or ""),
                                    secret_var=str(raw.get("secret_var") or ""),
                                    when=parse_when(raw.get("when"), f"values[{i}].when")))
    return Variable(name=name, values=parsed)


async def create_variable(svc: Services, ident: Identity, parent_type: str, ref: str, name: str,
                          values: Any) -> Variable:
    await _check_owner(svc, ident, parent_type, ref)
    return await svc.configstore.create_variable(parent_type, ref, _variable(name, values))


async def update_variable(svc: Services, ident: Identity, parent_type: str, ref: str, variable_name: str, name: str,
                          values: Any) -> Variable:
    await _check_owner(svc, ident, parent_type, ref)
    return await svc.configstore.update_variable(parent_type, ref, variable_name, _variable(name or variable_name, values))


async def delete_variable(svc: Services, ident: Identity, parent_type: str, ref: str, name: str) -> None:
    await _check_owner(svc, ident, parent_type, ref)
    await svc.configstore.delete_variable(parent_type, ref, name)


# --- when ---------------------------------------------------------------------------------------


def _condition(raw: Any, where: str) -> WhenCondition:
    if isinstance(raw, dict):  # already structured: {type, match}
        type_ = str(raw.get("type") or WhenConditionType.SIMPLE)
        match = str(raw.get("match") or "")
    elif isinstance(raw, str):
        if len(raw) > 2 and ((raw[0] == raw[-1] == "/") or (raw[0] == raw[-1] == "#")):
            type_, match = WhenConditionType.REGEXP, raw[1:-1]
        else:
            type_, match = WhenConditionType.SIMPLE, raw
    else:
        raise BadRequest(f"{where}: expected a string")
    if type_ == WhenConditionType.REGEXP:
        try:
            compile_condition_regexp(match)
        except RegexpError as exc:
            raise BadRequest(f"{where}: {exc}") from None
    elif type_ != WhenConditionType.SIMPLE:
        raise BadRequest(f"{where}: unknown condition type {type_!r}")
    return WhenCondition(type=type_, match=match)


def _conditions(raw: Any, where: str) -> WhenConditions | None:
    if raw is None:
        return None
    if isinstance(raw, (str, list)) or (isinstance(raw, dict) and ("type" in raw or "match" in raw)):
        items = raw if isinstance(raw, list) else [raw]
        return WhenConditions(include=[_condition(c, f"{where}[{i}]") for i, c in enumerate(items)])
    if isinstance(raw, dict):
        out = {}
        for key in ("include", "exclude"):
            part = raw.get(key)
            items = [] if part is None else part if isinstance(part, list) else [part]
            out[key] = [_condition(c, f"{where}.{key}[{i}]") for i, c in enumerate(items)]
        return WhenConditions(**out)
    raise BadRequest(f"{where}: expected a string, a list or {{include, exclude}}")


def parse_when(raw: Any, where: str = "when") -> When | None:
    """A ``when`` in pipeline syntax (``{branch: main}``, lists, ``/regexp/``, include/exclude) or
    already in the stored form, as the configstore's ``When``."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise BadRequest(f"{where}: expected an object with branch, tag or ref")
    unknown = set(raw) - {"branch", "tag", "ref"}
    if unknown:
        raise BadRequest(f"{where}: unknown keys {sorted(unknown)} (expected branch, tag, ref)")
    return When(**{k: _conditions(raw.get(k), f"{where}.{k}") for k in ("branch", "tag", "ref")})
