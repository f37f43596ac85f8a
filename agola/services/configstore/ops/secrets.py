"""Secret and variable operations (spec §5.4). Their parent (a project or a project group) comes
from the URL: ``parent_type`` and a ref to it."""

from __future__ import annotations

import attrs

from agola.errors import BadRequest
from agola.services.configstore import changegroups as cg
from agola.services.configstore.ops.plan import Env, Plan, Write, plan
from agola.services.configstore.state import ConfigState
from agola.services.configstore.validation import check_secret, check_variable
from agola.types.configstore import ConfigType, Parent, Secret, Variable


def existing_parent(state: ConfigState, parent_type: str, parent_ref: str) -> Parent:
    """The resolved parent (type and id) of secrets and variables."""
    if parent_type == ConfigType.PROJECT:
        project = state.project_by_ref(parent_ref)
        if project is None:
            raise BadRequest(f"project {parent_ref!r} doesn't exist")
        return Parent(ConfigType.PROJECT, project.id)
    if parent_type == ConfigType.PROJECTGROUP:
        group = state.project_group_by_ref(parent_ref)
        if group is None:
            raise BadRequest(f"project group {parent_ref!r} doesn't exist")
        return Parent(ConfigType.PROJECTGROUP, group.id)
    raise BadRequest(f"invalid parent type {parent_type!r}: expected \"project\" or \"projectgroup\"")


def existing_secret(state: ConfigState, parent: Parent, name: str) -> Secret:
    secret = state.secret_by_name(parent.id, name)
    if secret is None:
        raise BadRequest(f"secret with name {name!r} doesn't exist")
    return secret


def existing_variable(state: ConfigState, parent: Parent, name: str) -> Variable:
    variable = state.variable_by_name(parent.id, name)
    if variable is None:
        raise BadRequest(f"variable with name {name!r} doesn't exist")
    return variable


def create_secret(
    state: ConfigState, parent_type: str, parent_ref: str, req: Secret, env: Env = Env()
) -> Plan[Secret]:
    parent = existing_parent(state, parent_type, parent_ref)
    secret = attrs.evolve(req, id=env.new_id(), parent=parent)
    check_secret(secret)
    if state.secret_by_name(parent.id, secret.name) is not None:
        raise BadRequest(f"secret with name {secret.name!r} already exists at {state.parent_path(parent)!r}")
    groups = [cg.secret_name(parent.id, secret.name), cg.parent_id(parent.type, parent.id)]
    return plan([Write.put(secret)], groups, secret)


def update_secret(
    state: ConfigState, parent_type: str, parent_ref: str, name: str, req: Secret
) -> Plan[Secret]:
    """Replace a secret (found by its current name); it keeps its id and parent."""
    parent = existing_parent(state, parent_type, parent_ref)
    current = existing_secret(state, parent, name)
    secret = attrs.evolve(req, id=current.id, parent=parent)
    check_secret(secret)
    if secret.name != current.name and state.secret_by_name(parent.id, secret.name) is not None:
        raise BadRequest(f"secret with name {secret.name!r} already exists at {state.parent_path(parent)!r}")
    groups = [cg.secret_id(current.id), cg.secret_name(parent.id, current.name), cg.secret_name(parent.id, secret.name)]
    return plan([Write.put(secret)], groups, secret)


def delete_secret(state: ConfigState, parent_type: str, parent_ref: str, name: str) -> Plan[Secret]:
    parent = existing_parent(state, parent_type, parent_ref)
    secret = existing_secret(state, parent, name)
    groups = [cg.secret_id(secret.id), cg.secret_name(parent.id, secret.name)]
    return plan([Write.delete(ConfigType.SECRET, secret.id)], groups, secret)


def create_variable(
    state: ConfigState, parent_type: str, parent_ref: str, req: Variable, env: Env = Env()
) -> Plan[Variable]:
    parent = existing_parent(state, parent_type, parent_ref)
    variable = attrs.evolve(req, id=env.new_id(), parent=parent)
    check_variable(variable)
    if state.variable_by_name(parent.id, variable.name) is not None:
        raise BadRequest(f"variable with name {variable.name!r} already exists at {state.parent_path(parent)!r}")
    groups = [cg.variable_name(parent.id, variable.name), cg.parent_id(parent.type, parent.id)]
    return plan([Write.put(variable)], groups, variable)


def update_variable(
    state: ConfigState, parent_type: str, parent_ref: str, name: str, req: Variable
) -> Plan[Variable]:
    parent = existing_parent(state, parent_type, parent_ref)
    current = existing_variable(state, parent, name)
    variable = attrs.evolve(req, id=current.id, parent=parent)
    check_variable(variable)
    if variable.name != current.name and state.variable_by_name(parent.id, variable.name) is not None:
        raise BadRequest(f"variable with name {variable.name!r} already exists at {state.parent_path(parent)!r}")
    groups = [
        cg.variable_id(current.id),
        cg.variable_name(parent.id, current.name),
        cg.variable_name(parent.id, variable.name),
    ]
    return plan([Write.put(variable)], groups, variable)


def delete_variable(state: ConfigState, parent_type: str, parent_ref: str, name: str) -> Plan[Variable]:
    parent = existing_parent(state, parent_type, parent_ref)
    variable = existing_variable(state, parent, name)
    groups = [cg.variable_id(variable.id), cg.variable_name(parent.id, variable.name)]
    return plan([Write.delete(ConfigType.VARIABLE, variable.id)], groups, variable)
