"""``agola project``: projects, their secrets and variables (spec §8)."""

from __future__ import annotations

import click

from agola.cli import CliContext
from agola.cli._output import Column, call, done, emit, json_option
from agola.cli._secrets import secret_group, variable_group

PROJECT_COLUMNS: list[Column] = [
    ("path", lambda p: p.path),
    ("visibility", lambda p: p.visibility),
    ("id", lambda p: p.id),
]
VISIBILITY = click.Choice(["public", "private"])


@click.group()
def project() -> None:
    """Manage projects (a repository on a remote source, built on every push)."""


@project.command("create")
@click.option("-n", "--name", required=True, help="Project name.")
@click.option("--parent", required=True, help="Parent group: path (user/<name>, org/<name>/...) or id.")
@click.option("--repo-path", required=True, help="Repository path on the remote source (owner/name).")
@click.option("--remote-source", required=True, help="Remote source name.")
@click.option("-s", "--skip-ssh-host-key-check", is_flag=True, help="Do not check the git host's ssh key.")
@click.option("--visibility", type=VISIBILITY, default="public", show_default=True)
@json_option
@click.pass_obj
def create(
    ctx: CliContext, name: str, parent: str, repo_path: str, remote_source: str, skip_ssh_host_key_check: bool,
    visibility: str, as_json: bool,
) -> None:
    """Create a project (installs a deploy key and a webhook on the repository)."""
    from agola.client import CreateProjectRequest

    req = CreateProjectRequest(name, parent, repo_path, remote_source, visibility, skip_ssh_host_key_check)
    res = call(ctx, lambda gw: gw.create_project(req))
    done(f"project {res.path or name} created (id {res.id})", res, as_json)


@project.command("update")
@click.option("--ref", required=True, help="Project path or id.")
@click.option("-n", "--name", default=None, help="New name.")
@click.option("--parent", default=None, help="New parent group.")
@click.option("--visibility", type=VISIBILITY, default=None)
@click.option("--pass-vars-to-forked-pr/--no-pass-vars-to-forked-pr", default=None,
              help="Give runs of pull requests from forks the project's variables (and so its secrets).")
@json_option
@click.pass_obj
def update(ctx: CliContext, ref: str, name: str | None, parent: str | None, visibility: str | None,
           pass_vars_to_forked_pr: bool | None, as_json: bool) -> None:
    """Change a project (only the options given are sent)."""
    from agola.client import UpdateProjectRequest

    req = UpdateProjectRequest(name=name, parent_ref=parent, visibility=visibility,
                               pass_vars_to_forked_pr=pass_vars_to_forked_pr)
    res = call(ctx, lambda gw: gw.update_project(ref, req))
    done(f"project {res.path or ref} updated", res, as_json)


@project.command("delete")
@click.option("--ref", required=True, help="Project path or id.")
@click.pass_obj
def delete(ctx: CliContext, ref: str) -> None:
    """Delete a project."""
    call(ctx, lambda gw: gw.delete_project(ref))
    done(f"project {ref} deleted")


@project.command("show")
@click.option("--ref", required=True, help="Project path or id.")
@json_option
@click.pass_obj
def show(ctx: CliContext, ref: str, as_json: bool) -> None:
    """Show a project."""
    emit(call(ctx, lambda gw: gw.get_project(ref)), as_json, PROJECT_COLUMNS)


@project.command("list")
@click.option("--parent", required=True, help="Group path or id (user/<name> for a user's root group).")
@json_option
@click.pass_obj
def list_(ctx: CliContext, parent: str, as_json: bool) -> None:
    """List the projects of a project group."""
    emit(call(ctx, lambda gw: gw.list_project_group_projects(parent)), as_json, PROJECT_COLUMNS)


@project.command("reconfig")
@click.option("-n", "--name", "ref", required=True, help="Project path or id.")
@click.pass_obj
def reconfig(ctx: CliContext, ref: str) -> None:
    """Reinstall the project's deploy key and webhook."""
    call(ctx, lambda gw: gw.reconfig_project(ref))
    done(f"project {ref} reconfigured")


project.add_command(secret_group("project"))
project.add_command(variable_group("project"))
