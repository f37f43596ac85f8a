"""The configstore operations as pure planners: ``op(state, request, ...) -> Plan``.

Each takes the current ``ConfigState``, runs every check of spec §5.4 (raising ``BadRequest`` with
a precise message), and returns the writes to commit atomically, the change groups they depend on
(``agola.services.configstore.changegroups``) and the operation's result. Nothing here does I/O:
the actions layer reads the state, plans, and hands the plan to the datamanager.
"""

from __future__ import annotations

from agola.services.configstore.ops.orgs import add_org_member, create_org, delete_org, remove_org_member
from agola.services.configstore.ops.plan import Env, Plan, Write
from agola.services.configstore.ops.projects import (
    create_project,
    create_project_group,
    delete_project,
    delete_project_group,
    update_project,
    update_project_group,
)
from agola.services.configstore.ops.remotesources import (
    create_remote_source,
    delete_remote_source,
    update_remote_source,
)
from agola.services.configstore.ops.secrets import (
    create_secret,
    create_variable,
    delete_secret,
    delete_variable,
    update_secret,
    update_variable,
)
from agola.services.configstore.ops.users import (
    create_user,
    create_user_la,
    create_user_token,
    delete_user,
    delete_user_la,
    delete_user_token,
    update_user,
    update_user_la,
)

__all__ = [
    "Env",
    "Plan",
    "Write",
    "add_org_member",
    "create_org",
    "create_project",
    "create_project_group",
    "create_remote_source",
    "create_secret",
    "create_user",
    "create_user_la",
    "create_user_token",
    "create_variable",
    "delete_org",
    "delete_project",
    "delete_project_group",
    "delete_remote_source",
    "delete_secret",
    "delete_user",
    "delete_user_la",
    "delete_user_token",
    "delete_variable",
    "remove_org_member",
    "update_project",
    "update_project_group",
    "update_remote_source",
    "update_secret",
    "update_user",
    "update_user_la",
    "update_variable",
]
