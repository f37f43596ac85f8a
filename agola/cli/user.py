"""``agola user``: users, their API tokens and linked accounts (spec §8).

Creating and deleting users needs the admin token (``agola --token <adminToken> user create NAME``);
that plus ``user token create`` is how a fresh installation gets its first user (docs/cli.md).
"""

from __future__ import annotations

import click

from agola.cli import CliContext
from agola.cli._output import Column, call, done, emit, emit_fields, json_option, pick
from agola.client import LinkedAccountResponse

USER_COLUMNS: list[Column] = [("id", lambda u: u.id), ("username", lambda u: u.username)]
USER_FIELDS: list[Column] = [
    ("ID", lambda u: u.id),
    ("Username", lambda u: u.username),
    ("Tokens", lambda u: u.tokens),
    ("Linked accounts", lambda u: [_linked_account(la) for la in u.linked_accounts]),
]

def _linked_account(la: LinkedAccountResponse) -> str:
    line = f"{la.remote_user_name}@{la.remote_source_id} ({la.id})"
    if la.needs_reauthorization:
        line += f" needs re-authorization ({la.needs_reauthorization}): agola user linkedaccount create -r <source>"
    return line


_username = click.option("-n", "--username", "username_opt", help="User name.")


@click.group()
def user() -> None:
    """Manage users, their API tokens and linked accounts."""


@user.command("create")
@click.argument("username", required=False)
@_username
@json_option
@click.pass_obj
def create(ctx: CliContext, username: str | None, username_opt: str | None, as_json: bool) -> None:
    """Create a user (admin only)."""
    name = pick(username, username_opt, "user name")
    created = call(ctx, lambda gw: gw.create_user(name))
    done(f"user {created.username or name} created (id {created.id})", created, as_json)


@user.command("delete")
@click.argument("username", required=False)
@_username
@click.pass_obj
def delete(ctx: CliContext, username: str | None, username_opt: str | None) -> None:
    """Delete a user (admin only)."""
    name = pick(username, username_opt, "user name")
    call(ctx, lambda gw: gw.delete_user(name))
    done(f"user {name} deleted")


@user.command("list")
@click.option("--limit", default=10, show_default=True, help="At most this many users.")
@click.option("--start", default="", help="List users after this name.")
@json_option
@click.pass_obj
def list_(ctx: CliContext, limit: int, start: str, as_json: bool) -> None:
    """List users (admin only)."""
    users = call(ctx, lambda gw: gw.list_users(start=start, limit=limit, asc=True))
    emit(users, as_json, USER_COLUMNS)


@user.command("show")
@click.argument("username", required=False)
@_username
@json_option
@click.pass_obj
def show(ctx: CliContext, username: str | None, username_opt: str | None, as_json: bool) -> None:
    """Show a user; without a name, the user of the token in use."""
    name = username_opt or username
    found = call(ctx, lambda gw: gw.get_user(name) if name else gw.current_user())
    emit_fields(found, as_json, USER_FIELDS)


# ---------------------------------------------------------------- tokens


@user.group("token")
def token() -> None:
    """Manage a user's API tokens."""


_tokenname = click.option("-t", "--tokenname", "tokenname_opt", help="Token name.")


@token.command("create")
@click.argument("username", required=False)
@click.argument("tokenname", required=False)
@_username
@_tokenname
@json_option
@click.pass_obj
def token_create(
    ctx: CliContext, username: str | None, tokenname: str | None, username_opt: str | None,
    tokenname_opt: str | None, as_json: bool,
) -> None:
    """Create an API token and print it: it is shown only this once."""
    name = pick(username, username_opt, "user name")
    tname = pick(tokenname, tokenname_opt, "token name")
    value = call(ctx, lambda gw: gw.create_user_token(name, tname))
    if as_json:
        done("", {"token": value}, True)
    else:
        click.echo(value)  # alone on stdout, so `TOKEN=$(agola user token create ...)` works


@token.command("delete")
@click.argument("username", required=False)
@click.argument("tokenname", required=False)
@_username
@_tokenname
@click.pass_obj
def token_delete(
    ctx: CliContext, username: str | None, tokenname: str | None, username_opt: str | None, tokenname_opt: str | None
) -> None:
    """Delete an API token."""
    name = pick(username, username_opt, "user name")
    tname = pick(tokenname, tokenname_opt, "token name")
    call(ctx, lambda gw: gw.delete_user_token(name, tname))
    done(f"token {tname} of user {name} deleted")


@user.command("remoterepos")
@click.option("-r", "--remote-source", required=True, help="Remote source name.")
@json_option
@click.pass_obj
def remoterepos(ctx: CliContext, remote_source: str, as_json: bool) -> None:
    """List your repositories on a remote source that a project can be created on."""
    emit(call(ctx, lambda gw: gw.list_remote_repos(remote_source)), as_json,
         [("path", lambda r: r.path), ("id", lambda r: r.id)])


# ---------------------------------------------------------------- linked accounts


@user.group("linkedaccount")
def linkedaccount() -> None:
    """Link a user to an account on a remote git source."""


@linkedaccount.command("create")
@click.option("-n", "--username", required=True, help="User name.")
@click.option("-r", "--remote-source", required=True, help="Remote source name.")
@click.option("--remote-name", default="", help="Login name on the remote source (password sources).")
@click.option("--remote-password", default="", help="Password on the remote source (password sources).")
@json_option
@click.pass_obj
def la_create(
    ctx: CliContext, username: str, remote_source: str, remote_name: str, remote_password: str, as_json: bool
) -> None:
    """Create a linked account; for an oauth2 source, prints the URL to open to authorize it."""
    from agola.client import CreateUserLARequest

    req = CreateUserLARequest(remote_source, remote_name, remote_password)
    res = call(ctx, lambda gw: gw.create_user_linked_account(username, req))
    if as_json:
        done("", res, True)
    elif res.oauth2_redirect:
        click.echo(f"open this URL to authorize the linked account:\n{res.oauth2_redirect}")
    else:
        la_id = res.linked_account.id if res.linked_account else ""
        click.echo(f"linked account created (id {la_id})")


@linkedaccount.command("complete")
@click.argument("callback_url")
@json_option
@click.pass_obj
def la_complete(ctx: CliContext, callback_url: str, as_json: bool) -> None:
    """Finish an oauth2 linked account without a browser session: CALLBACK_URL is the address the
    forge redirected to after the authorization (it carries ``code`` and ``state``)."""
    from urllib.parse import parse_qs, urlsplit

    query = parse_qs(urlsplit(callback_url).query)
    code, state = (query.get("code") or [""])[0], (query.get("state") or [""])[0]
    if not code or not state:
        raise click.BadParameter("the URL has no code and state query parameters", param_hint="CALLBACK_URL")
    res = call(ctx, lambda gw: gw.complete_oauth2(code, state))
    if as_json:
        done("", res, True)
    else:
        la_id = res.linked_account.id if res.linked_account else ""
        click.echo(f"linked account created (id {la_id})")


@linkedaccount.command("delete")
@click.option("-n", "--username", required=True, help="User name.")
@click.option("--laid", required=True, help="Linked account id.")
@click.pass_obj
def la_delete(ctx: CliContext, username: str, laid: str) -> None:
    """Delete a linked account."""
    call(ctx, lambda gw: gw.delete_user_linked_account(username, laid))
    done(f"linked account {laid} of user {username} deleted")
