"""``agola remotesource``: git hosts agola works with (admin only; spec §8)."""

from __future__ import annotations

import click

from agola.cli import CliContext
from agola.cli._output import Column, call, done, emit, json_option

RS_COLUMNS: list[Column] = [
    ("name", lambda r: r.name),
    ("auth type", lambda r: r.auth_type),
    ("registration", lambda r: r.registration_enabled),
    ("login", lambda r: r.login_enabled),
    ("id", lambda r: r.id),
]
GITHUB_API_URL = "https://api.github.com"


@click.group()
def remotesource() -> None:
    """Manage remote sources (gitea, gitlab, github)."""


@remotesource.command("create")
@click.option("-n", "--name", required=True)
@click.option("--type", "type_", required=True, type=click.Choice(["gitea", "gitlab", "github"]))
@click.option("--auth-type", required=True, type=click.Choice(["oauth2", "password"]))
@click.option("--api-url", default="",
              help="API URL of the git host (required unless --type github: https://api.github.com by default, "
                   "a GitHub Enterprise Server's URL otherwise).")
@click.option("--skip-verify", is_flag=True, help="Do not verify the host's TLS certificate.")
@click.option("--clientid", default="", help="OAuth2 client id.")
@click.option("--secret", default="", help="OAuth2 client secret.")
@click.option("--ssh-host-key", default="", help="The host's ssh public key.")
@click.option("-s", "--skip-ssh-host-key-check", is_flag=True)
@click.option("--registration-enabled/--no-registration-enabled", default=True, show_default=True)
@click.option("--login-enabled/--no-login-enabled", default=True, show_default=True)
@json_option
@click.pass_obj
def create(
    ctx: CliContext, name: str, type_: str, auth_type: str, api_url: str, skip_verify: bool, clientid: str,
    secret: str, ssh_host_key: str, skip_ssh_host_key_check: bool, registration_enabled: bool,
    login_enabled: bool, as_json: bool,
) -> None:
    """Create a remote source."""
    from agola.client import CreateRemoteSourceRequest

    if type_ == "github" and not api_url:
        api_url = GITHUB_API_URL
    elif not api_url:
        raise click.UsageError("--api-url is required unless --type github")
    req = CreateRemoteSourceRequest(
        name=name, type=type_, auth_type=auth_type, apiurl=api_url, skip_verify=skip_verify,
        oauth_2_client_id=clientid, oauth_2_client_secret=secret, ssh_host_key=ssh_host_key,
        skip_ssh_host_key_check=skip_ssh_host_key_check, registration_enabled=registration_enabled,
        login_enabled=login_enabled,
    )
    res = call(ctx, lambda gw: gw.create_remote_source(req))
    done(f"remote source {res.name or name} created (id {res.id})", res, as_json)


@remotesource.command("update")
@click.option("--ref", required=True, help="Remote source name or id.")
@click.option("--new-name", default=None)
@click.option("--api-url", default=None)
@click.option("--skip-verify/--no-skip-verify", default=None)
@click.option("--clientid", default=None)
@click.option("--secret", default=None)
@click.option("--ssh-host-key", default=None)
@click.option("-s", "--skip-ssh-host-key-check/--no-skip-ssh-host-key-check", default=None)
@click.option("--registration-enabled/--no-registration-enabled", default=None)
@click.option("--login-enabled/--no-login-enabled", default=None)
@json_option
@click.pass_obj
def update(
    ctx: CliContext, ref: str, new_name: str | None, api_url: str | None, skip_verify: bool | None,
    clientid: str | None, secret: str | None, ssh_host_key: str | None, skip_ssh_host_key_check: bool | None,
    registration_enabled: bool | None, login_enabled: bool | None, as_json: bool,
) -> None:
    """Change a remote source (only the options given are sent)."""
    from agola.client import UpdateRemoteSourceRequest

    req = UpdateRemoteSourceRequest(
        name=new_name, apiurl=api_url, skip_verify=skip_verify, oauth_2_client_id=clientid,
        oauth_2_client_secret=secret, ssh_host_key=ssh_host_key, skip_ssh_host_key_check=skip_ssh_host_key_check,
        registration_enabled=registration_enabled, login_enabled=login_enabled,
    )
    res = call(ctx, lambda gw: gw.update_remote_source(ref, req))
    done(f"remote source {res.name or new_name or ref} updated", res, as_json)


@remotesource.command("list")
@click.option("--limit", default=10, show_default=True)
@click.option("--start", default="")
@json_option
@click.pass_obj
def list_(ctx: CliContext, limit: int, start: str, as_json: bool) -> None:
    """List remote sources."""
    emit(call(ctx, lambda gw: gw.list_remote_sources(start=start, limit=limit, asc=True)), as_json, RS_COLUMNS)


@remotesource.command("delete")
@click.option("--ref", "-n", "--name", "ref", required=True, help="Remote source name or id.")
@click.pass_obj
def delete(ctx: CliContext, ref: str) -> None:
    """Delete a remote source."""
    call(ctx, lambda gw: gw.delete_remote_source(ref))
    done(f"remote source {ref} deleted")
