"""Remote source operations (spec §5.4)."""

from __future__ import annotations

import attrs

from agola.errors import BadRequest
from agola.services.configstore import changegroups as cg
from agola.services.configstore.ops.plan import Env, Plan, Write, plan
from agola.services.configstore.state import ConfigState
from agola.services.configstore.validation import check_remote_source
from agola.types.configstore import ConfigType, RemoteSource


def existing_remote_source(state: ConfigState, ref: str) -> RemoteSource:
    rs = state.remote_source_by_ref(ref)
    if rs is None:
        raise BadRequest(f"remote source {ref!r} doesn't exist")
    return rs


def create_remote_source(state: ConfigState, rs: RemoteSource, env: Env = Env()) -> Plan[RemoteSource]:
    check_remote_source(rs)
    if state.remote_source_by_name(rs.name) is not None:
        raise BadRequest(f"remote source with name {rs.name!r} already exists")
    created = attrs.evolve(rs, id=env.new_id())
    return plan([Write.put(created)], [cg.remote_source_name(rs.name)], created)


def update_remote_source(state: ConfigState, ref: str, rs: RemoteSource) -> Plan[RemoteSource]:
    """Replace a remote source's settings (its id is kept)."""
    check_remote_source(rs)
    current = existing_remote_source(state, ref)
    if rs.name != current.name and state.remote_source_by_name(rs.name) is not None:
        raise BadRequest(f"remote source with name {rs.name!r} already exists")
    updated = attrs.evolve(rs, id=current.id)
    groups = [cg.remote_source_id(current.id), cg.remote_source_name(current.name), cg.remote_source_name(rs.name)]
    return plan([Write.put(updated)], groups, updated)


def delete_remote_source(state: ConfigState, ref: str) -> Plan[RemoteSource]:
    """Delete a remote source; refused while linked accounts or projects use it (deleting it
    would leave them pointing at nothing)."""
    rs = existing_remote_source(state, ref)
    accounts = state.linked_accounts_of_remote_source(rs.id)
    projects = state.projects_using_remote_source(rs.id)
    if accounts or projects:
        raise BadRequest(
            f"remote source {rs.name!r} can't be deleted: it is used by {len(accounts)} linked "
            f"account(s) and {len(projects)} project(s); remove them first"
        )
    groups = [cg.remote_source_id(rs.id), cg.remote_source_name(rs.name)]
    return plan([Write.delete(ConfigType.REMOTESOURCE, rs.id)], groups, rs)
