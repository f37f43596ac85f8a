"""``agola projectgroup``: project groups, their secrets and variables (spec §8)."""

from __future__ import annotations

import click

from agola.cli import CliContext
from agola.cli._output import Column, call, done, emit, json_option
from agola.cli._secrets import secret_group, variable_group

GROUP_COLUMNS: list[Column] = [
    ("path", lambda g: g.path),
    ("visibility", lambda g: g.visibility),
    ("id", lambda g: g.id),
]
VISIBILITY = click.Choice(["public", "private"])


@click.group()
def projectgroup() -> None:
    """Manage project groups (a tree under a user or an organization)."""


@projectgroup.command("create")
@click.option("-n", "--name", required=True, help="Group name.")
@click.option("--parent", required=True, help="Parent group: path (user/<name>, org/<name>/...) or id.")
@click.option("--visibility", type=VISIBILITY, default="public", show_default=True)
@json_option
@click.pass_obj
def create(ctx: CliContext, name: str, parent: str, visibility: str, as_json: bool) -> None:
    """Create a project group."""
    from agola.client import CreateProjectGroupRequest

    res = call(ctx, lambda gw: gw.create_project_group(CreateProjectGroupRequest(name, parent, visibility)))
    done(f"project group {res.path or name} created (id {res.id})", res, as_json)


@projectgroup.command("update")
@click.option("--ref", required=True, help="Group path or id.")
@click.option("-n", "--name", default=None, help="New name.")
@click.option("--parent", default=None, help="New parent group.")
@click.option("--visibility", type=VISIBILITY, default=None)
@json_option
@click.pass_obj
def update(ctx: CliContext, ref: str, name: str | None, parent: str | None, visibility: str | None, as_json: bool) -> None:
    """Change a project group (only the options given are sent)."""
    from agola.client import UpdateProjectGroupRequest

    req = UpdateProjectGroupRequest(name=name, parent_ref=parent, visibility=visibility)
    res = call(ctx, lambda gw: gw.update_project_group(ref, req))
    done(f"project group {res.path or ref} updated", res, as_json)


@projectgroup.command("delete")
@click.option("--ref", required=True, help="Group path or id.")
@click.pass_obj
def delete(ctx: CliContext, ref: str) -> None:
    """Delete a project group and everything in it."""
    call(ctx, lambda gw: gw.delete_project_group(ref))
    done(f"project group {ref} deleted")


@projectgroup.command("show")
@click.option("--ref", required=True, help="Group path or id.")
@json_option
@click.pass_obj
def show(ctx: CliContext, ref: str, as_json: bool) -> None:
    """Show a project group."""
    emit(call(ctx, lambda gw: gw.get_project_group(ref)), as_json, GROUP_COLUMNS)


@projectgroup.command("list")
@click.option("--parent", required=True, help="Group path or id (user/<name> for a user's root group).")
@json_option
@click.pass_obj
def list_(ctx: CliContext, parent: str, as_json: bool) -> None:
    """List the subgroups of a project group."""
    emit(call(ctx, lambda gw: gw.list_project_group_subgroups(parent)), as_json, GROUP_COLUMNS)


projectgroup.add_command(secret_group("projectgroup"))
projectgroup.add_command(variable_group("projectgroup"))
