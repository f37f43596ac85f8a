"""``agola org``: organizations and their members (spec §8)."""

from __future__ import annotations

import click

from agola.cli import CliContext
from agola.cli._output import Column, call, done, emit, json_option, pick

ORG_COLUMNS: list[Column] = [("id", lambda o: o.id), ("name", lambda o: o.name), ("visibility", lambda o: o.visibility)]
MEMBER_COLUMNS: list[Column] = [
    ("username", lambda m: m.user.username if m.user else ""),
    ("role", lambda m: m.role),
    ("user id", lambda m: m.user.id if m.user else ""),
]
VISIBILITY = click.Choice(["public", "private"])

_name = click.option("-n", "--name", "name_opt", help="Organization name.")


@click.group()
def org() -> None:
    """Manage organizations and their members."""


@org.command("create")
@click.argument("name", required=False)
@_name
@click.option("--visibility", type=VISIBILITY, default="public", show_default=True)
@json_option
@click.pass_obj
def create(ctx: CliContext, name: str | None, name_opt: str | None, visibility: str, as_json: bool) -> None:
    """Create an organization; its creator becomes its owner."""
    from agola.client import CreateOrgRequest

    req = CreateOrgRequest(pick(name, name_opt, "organization name"), visibility)
    created = call(ctx, lambda gw: gw.create_org(req))
    done(f"organization {created.name or req.name} created (id {created.id})", created, as_json)


@org.command("delete")
@click.argument("name", required=False)
@_name
@click.pass_obj
def delete(ctx: CliContext, name: str | None, name_opt: str | None) -> None:
    """Delete an organization (its owners only)."""
    ref = pick(name, name_opt, "organization name")
    call(ctx, lambda gw: gw.delete_org(ref))
    done(f"organization {ref} deleted")


@org.command("list")
@click.option("--limit", default=10, show_default=True)
@click.option("--start", default="", help="List organizations after this name.")
@json_option
@click.pass_obj
def list_(ctx: CliContext, limit: int, start: str, as_json: bool) -> None:
    """List organizations."""
    emit(call(ctx, lambda gw: gw.list_orgs(start=start, limit=limit, asc=True)), as_json, ORG_COLUMNS)


@org.group("member")
def member() -> None:
    """Manage the members of an organization."""


_orgname = click.option("-n", "--orgname", required=True, help="Organization name.")
_username = click.option("--username", required=True, help="User name.")


@member.command("add")
@_orgname
@_username
@click.option("-r", "--role", type=click.Choice(["member", "owner"]), default="member", show_default=True)
@json_option
@click.pass_obj
def member_add(ctx: CliContext, orgname: str, username: str, role: str, as_json: bool) -> None:
    """Add a member, or change the role of one."""
    res = call(ctx, lambda gw: gw.add_org_member(orgname, username, role))
    done(f"user {username} is {res.role or role} of organization {orgname}", res, as_json)


@member.command("remove")
@_orgname
@_username
@click.pass_obj
def member_remove(ctx: CliContext, orgname: str, username: str) -> None:
    """Remove a member."""
    call(ctx, lambda gw: gw.remove_org_member(orgname, username))
    done(f"user {username} removed from organization {orgname}")


@member.command("list")
@_orgname
@json_option
@click.pass_obj
def member_list(ctx: CliContext, orgname: str, as_json: bool) -> None:
    """List the members of an organization."""
    res = call(ctx, lambda gw: gw.list_org_members(orgname))
    if as_json:
        emit(res, True, [])
    else:
        emit(res.members, False, MEMBER_COLUMNS)
