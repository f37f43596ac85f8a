"""``agola login`` / ``logout`` / ``whoami`` / ``profile``: named login profiles (a gateway URL
and an API token) kept in ``~/.config/agola/config.yml`` (see ``agola.cli._profiles``).

The gateway has no password of its own: ``agola login`` takes an API token, or signs in with an
account on a remote source (spec §6.3: login and password, or the OAuth2 page in a browser; the
gateway answers a login token, a JWT sent as ``Authorization: bearer``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import click

from agola.cli import CliContext
from agola.cli._output import CliError, Column, emit, json_option, print_json
from agola.cli._profiles import DEFAULT_PROFILE, Profile, ProfileFile, check_name

if TYPE_CHECKING:
    from agola.client import GatewayClient


async def _identify(url: str, token: str) -> tuple[str, str]:
    """(user name, user id) the token belongs to; ("admin", "") for the admin token."""
    from agola.client import BadRequest, ClientError, GatewayClient, Unauthorized

    async with GatewayClient(url, token) as gw:
        try:
            me = await gw.current_user()
            return me.username, me.id
        except Unauthorized:
            raise CliError(f"the gateway at {url} refused the token") from None
        except BadRequest:
            # The admin token has no user; only the admin may list users.
            try:
                await gw.list_users(limit=1)
            except ClientError:
                raise CliError(f"the gateway at {url} has no user for this token") from None
            return "admin", ""


def identify(url: str, token: str) -> tuple[str, str]:
    from agola.client import ClientError

    try:
        return asyncio.run(_identify(url, token))
    except ClientError as exc:
        raise CliError(exc.message) from None


async def _auth_type(gw: GatewayClient, source: str) -> str:
    """The auth type of a remote source (the list of remote sources needs no token)."""
    start = ""
    while True:
        page = await gw.list_remote_sources(start=start, limit=100, asc=True)
        for rs in page:
            if source in (rs.name, rs.id):
                return rs.auth_type
        if len(page) < 100:
            raise CliError(f"no remote source {source!r} on {gw.url} (agola remotesource list)")
        start = page[-1].name


async def _forge_login(url: str, source: str, login_name: str | None) -> str:
    """A login token (JWT) from signing in with a remote source's account: its login and
    password for a password source; for an OAuth2 source, the forge's page opened in a browser
    and the address it redirects to pasted back."""
    from urllib.parse import parse_qs, urlsplit

    from agola.client import GatewayClient

    async with GatewayClient(url) as gw:
        if await _auth_type(gw, source) == "oauth2":
            started = await gw.login(source)
            click.echo(f"Open this address in a browser and sign in to {source}:\n\n  {started.oauth2_redirect}\n\n"
                       "Then paste the address the browser was sent back to (its page may show an error: "
                       "this terminal finishes the login).", err=True)
            pasted = await asyncio.to_thread(click.prompt, "Address", err=True)
            query = parse_qs(urlsplit(pasted.strip()).query)
            code, state = (query.get("code") or [""])[0], (query.get("state") or [""])[0]
            if not code or not state:
                raise CliError("that address has no code and state: paste the whole address the browser shows")
            res = await gw.complete_oauth2_login(code, state, started.oauth2_nonce)
        else:
            login = login_name or str(await asyncio.to_thread(click.prompt, f"{source} login", err=True))
            password = await asyncio.to_thread(click.prompt, f"{source} password", hide_input=True, err=True)
            res = await gw.login(source, login.strip(), password)
    if not res.token:
        raise CliError(f"the gateway at {url} answered no login token")
    return res.token


@click.command()
@click.option("-u", "--gateway-url", "url", default=None, help="Gateway URL (default: the global one).")
@click.option("--token", default=None, help="API token (default: the global one, else asked for).")
@click.option("-r", "--remote-source", "source", default=None,
              help="Sign in with your account on this remote source instead of a token.")
@click.option("--username", "login_name", default=None, help="With --remote-source: your login there (asked if not given).")
@click.option("-p", "--profile", "name", default=None, help="Profile name (default: the current one, else default).")
@click.pass_obj
def login(ctx: CliContext, url: str | None, token: str | None, source: str | None, login_name: str | None,
          name: str | None) -> None:
    """Check an API token against a gateway, or sign in with a remote source account, and save
    the gateway and the token as a profile (made current).

    API tokens come from `agola user token create` (docs/cli.md). The gateway has no password of
    its own: with --remote-source you sign in with your account on that git host (login enabled
    on the source, your agola user linked to the account): its login and password for a
    password source, its page in a browser for an OAuth2 source. The login token expires
    (gateway.tokenSigning.duration).
    """
    profiles = ProfileFile.load()
    name = check_name(name or ctx.profile_name or DEFAULT_PROFILE)
    url = (url or ctx.gateway_url).rstrip("/")
    if source:
        if token:
            raise click.UsageError("give --token or --remote-source, not both")
        from agola.client import ClientError

        try:
            token = asyncio.run(_forge_login(url, source, login_name))
        except ClientError as exc:
            raise CliError(exc.message) from None
    if token is None:
        token = ctx.token if ctx.token and not ctx.from_profile else ""
    if not token:
        token = click.prompt("API token", hide_input=True, err=True).strip()
    username, _ = identify(url, token)
    previous = profiles.current if profiles.current in profiles.profiles else ""
    profiles.profiles[name] = Profile(name, url, token)
    profiles.current = name
    profiles.save()
    click.echo(f"logged in to {url} as {username} (profile {name}, saved in {profiles.path})")
    if previous and previous != name:
        click.echo(f"the current profile was {previous}: agola profile use {previous} switches back")


@click.command()
@click.option("-p", "--profile", "name", default=None, help="Profile to forget (default: the current one).")
@click.pass_obj
def logout(ctx: CliContext, name: str | None) -> None:
    """Remove a profile and its token from the profiles file."""
    profiles = ProfileFile.load()
    name = name or ctx.profile_name
    gone = profiles.profiles.pop(name, None) if name else None
    if gone is None:
        raise CliError(f"no profile {name!r} in {profiles.path}" if name else "not logged in (no current profile)")
    if profiles.current == name:
        profiles.current = ""
    profiles.save()
    click.echo(f"logged out: profile {name} ({gone.gateway_url}) removed")


@click.command()
@json_option
@click.pass_obj
def whoami(ctx: CliContext, as_json: bool) -> None:
    """Show who the commands run as: the user, the gateway and the profile."""
    if not ctx.token:
        raise CliError(f"not logged in to {ctx.gateway_url}: agola login -u {ctx.gateway_url} (or --token / AGOLA_TOKEN)")
    username, user_id = identify(ctx.gateway_url, ctx.token)
    profile = ctx.profile_name if ctx.from_profile else ""
    if as_json:
        print_json({"username": username, "id": user_id, "gateway_url": ctx.gateway_url, "profile": profile})
        return
    who = f"{username} (id {user_id})" if user_id else "admin (the admin token)"
    click.echo(f"User:    {who}")
    click.echo(f"Gateway: {ctx.gateway_url}")
    click.echo(f"Profile: {profile or '(none: flags or environment)'}")


PROFILE_COLUMNS: list[Column] = [
    ("current", lambda row: "*" if row[0] else ""),
    ("name", lambda row: row[1].name),
    ("gateway", lambda row: row[1].gateway_url),
]


@click.group()
def profile() -> None:
    """List the login profiles and pick the current one."""


@profile.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List the profiles (the current one starred); tokens are not shown."""
    profiles = ProfileFile.load()
    rows = [(p.name == profiles.current, p) for p in sorted(profiles.profiles.values(), key=lambda p: p.name)]
    if as_json:
        print_json([{"name": p.name, "gateway_url": p.gateway_url, "current": cur} for cur, p in rows])
    elif not rows:
        click.echo(f"no profiles ({profiles.path}): agola login")
    else:
        emit(rows, False, PROFILE_COLUMNS)


@profile.command("use")
@click.argument("name")
def use(name: str) -> None:
    """Make NAME the current profile."""
    profiles = ProfileFile.load()
    if name not in profiles.profiles:
        known = ", ".join(sorted(profiles.profiles)) or "none"
        raise CliError(f"no profile {name!r} (profiles: {known})")
    profiles.current = name
    profiles.save()
    click.echo(f"profile {name} ({profiles.profiles[name].gateway_url}) is now current")
