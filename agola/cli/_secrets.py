"""``secret`` and ``variable`` subcommands, built once for ``agola project`` (``--project``) and
once for ``agola projectgroup`` (``--projectgroup``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from agola.cli import CliContext
from agola.cli._output import CliError, Column, call, done, emit, json_option, read_yaml_source

if TYPE_CHECKING:
    from agola.client import ParentKind

SECRET_COLUMNS: list[Column] = [("name", lambda s: s.name), ("parent path", lambda s: s.parent_path), ("id", lambda s: s.id)]
VARIABLE_COLUMNS: list[Column] = [
    ("name", lambda v: v.name),
    ("parent path", lambda v: v.parent_path),
    ("values", lambda v: [f"{x.secret_name}.{x.secret_var}" + (" (when)" if x.when else "") for x in v.values]),
]


def _secret_data(path: str) -> dict[str, str]:
    data = read_yaml_source(path)
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise CliError(f"{path}: a secret file is a map of name: value")
    return {k: "" if v is None else str(v) for k, v in data.items()}


def _variable_values(path: str) -> list[Any]:
    from agola.client import VariableValueRequest

    data = read_yaml_source(path)
    if not isinstance(data, list):
        raise CliError(f"{path}: a variable file is a list of {{secret_name, secret_var, when}}")
    values = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or not item.get("secret_name") or not item.get("secret_var"):
            raise CliError(f"{path}: value {i + 1}: secret_name and secret_var are required")
        values.append(VariableValueRequest(str(item["secret_name"]), str(item["secret_var"]), item.get("when")))
    return values


def _tree_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--remove-overridden", is_flag=True, help="With --tree: keep only the nearest of each name.")(func)
    func = click.option("--tree", is_flag=True, help="Include those inherited from parent project groups.")(func)
    return func


def secret_group(kind: ParentKind) -> click.Group:
    """``<kind> secret create|update|delete|list`` with the parent given by ``--<kind>``."""
    parent = click.option(f"--{kind}", "parent", required=True, help=f"The {kind} (path or id).")
    name = click.option("-n", "--name", required=True, help="Secret name.")
    file = click.option("-f", "--file", "path", required=True, help="YAML map of name: value ('-' = stdin).")

    @click.group("secret")
    def group() -> None:
        """Manage secrets (maps of name: value that variables refer to)."""

    @group.command("create")
    @parent
    @name
    @file
    @json_option
    @click.pass_obj
    def create(ctx: CliContext, parent: str, name: str, path: str, as_json: bool) -> None:
        """Create a secret."""
        from agola.client import CreateSecretRequest

        req = CreateSecretRequest(name, _secret_data(path))
        res = call(ctx, lambda gw: gw.create_secret(kind, parent, req))
        done(f"secret {name} created in {kind} {parent}", res, as_json)

    @group.command("update")
    @parent
    @name
    @click.option("--new-name", default=None, help="Rename the secret.")
    @file
    @json_option
    @click.pass_obj
    def update(ctx: CliContext, parent: str, name: str, new_name: str | None, path: str, as_json: bool) -> None:
        """Replace a secret's data (and optionally rename it)."""
        from agola.client import CreateSecretRequest

        req = CreateSecretRequest(new_name or name, _secret_data(path))
        res = call(ctx, lambda gw: gw.update_secret(kind, parent, name, req))
        done(f"secret {new_name or name} updated in {kind} {parent}", res, as_json)

    @group.command("delete")
    @parent
    @name
    @click.pass_obj
    def delete(ctx: CliContext, parent: str, name: str) -> None:
        """Delete a secret."""
        call(ctx, lambda gw: gw.delete_secret(kind, parent, name))
        done(f"secret {name} deleted from {kind} {parent}")

    @group.command("list")
    @parent
    @_tree_options
    @json_option
    @click.pass_obj
    def list_(ctx: CliContext, parent: str, tree: bool, remove_overridden: bool, as_json: bool) -> None:
        """List secrets (names only: values are never shown)."""
        rows = call(ctx, lambda gw: gw.list_secrets(kind, parent, tree=tree, remove_overridden=remove_overridden))
        emit(rows, as_json, SECRET_COLUMNS)

    return group


def variable_group(kind: ParentKind) -> click.Group:
    """``<kind> variable create|update|delete|list`` with the parent given by ``--<kind>``."""
    parent = click.option(f"--{kind}", "parent", required=True, help=f"The {kind} (path or id).")
    name = click.option("-n", "--name", required=True, help="Variable name.")
    file = click.option("-f", "--file", "path", required=True,
                        help="YAML list of {secret_name, secret_var, when} ('-' = stdin); the first matching value wins.")

    @click.group("variable")
    def group() -> None:
        """Manage variables (values taken from secrets, chosen by branch/tag/ref)."""

    @group.command("create")
    @parent
    @name
    @file
    @json_option
    @click.pass_obj
    def create(ctx: CliContext, parent: str, name: str, path: str, as_json: bool) -> None:
        """Create a variable."""
        from agola.client import CreateVariableRequest

        req = CreateVariableRequest(name, _variable_values(path))
        res = call(ctx, lambda gw: gw.create_variable(kind, parent, req))
        done(f"variable {name} created in {kind} {parent}", res, as_json)

    @group.command("update")
    @parent
    @name
    @click.option("--new-name", default=None, help="Rename the variable.")
    @file
    @json_option
    @click.pass_obj
    def update(ctx: CliContext, parent: str, name: str, new_name: str | None, path: str, as_json: bool) -> None:
        """Replace a variable's values (and optionally rename it)."""
        from agola.client import CreateVariableRequest

        req = CreateVariableRequest(new_name or name, _variable_values(path))
        res = call(ctx, lambda gw: gw.update_variable(kind, parent, name, req))
        done(f"variable {new_name or name} updated in {kind} {parent}", res, as_json)

    @group.command("delete")
    @parent
    @name
    @click.pass_obj
    def delete(ctx: CliContext, parent: str, name: str) -> None:
        """Delete a variable."""
        call(ctx, lambda gw: gw.delete_variable(kind, parent, name))
        done(f"variable {name} deleted from {kind} {parent}")

    @group.command("list")
    @parent
    @_tree_options
    @json_option
    @click.pass_obj
    def list_(ctx: CliContext, parent: str, tree: bool, remove_overridden: bool, as_json: bool) -> None:
        """List variables."""
        rows = call(ctx, lambda gw: gw.list_variables(kind, parent, tree=tree, remove_overridden=remove_overridden))
        emit(rows, as_json, VARIABLE_COLUMNS)

    return group
