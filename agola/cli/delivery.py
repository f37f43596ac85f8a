"""``agola delivery``: run webhook and commit status deliveries (Agola v0.9), listed and
redelivered for a project's runs (``--project``) or your direct runs (``--user``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import click

from agola.cli import CliContext
from agola.cli._output import CliError, Column, call, done, emit, json_option

if TYPE_CHECKING:
    from agola.client.deliveries import DeliveryKind, OwnerKind

COLUMNS: list[Column] = [
    ("id", lambda d: d.id),
    ("run", lambda d: d.run_id),
    ("status", lambda d: d.delivery_status),
    ("code", lambda d: d.status_code or ""),
    ("attempts", lambda d: d.attempts),
    ("state", lambda d: d.commit_status_state),
    ("created", lambda d: d.created_at),
    ("delivered", lambda d: d.delivered_at),
    ("redelivers", lambda d: d.redelivery_of),
]
KINDS = click.Choice(["runwebhook", "commitstatus"])


def _owner(project: str | None, user: str | None) -> tuple[OwnerKind, str]:
    if bool(project) == bool(user):
        raise CliError("give one of --project or --user")
    return ("project", project or "") if project else ("user", user or "")


def _owner_options(f: click.decorators.FC) -> click.decorators.FC:
    f = click.option("--user", help="A user (name or id): their direct runs.")(f)
    f = click.option("--project", help="A project (path or id).")(f)
    f = click.option("--kind", type=KINDS, default="runwebhook", show_default=True,
                     help="Run webhooks, or commit statuses (project runs).")(f)
    return f


@click.group()
def delivery() -> None:
    """Run webhook and commit status deliveries."""


@delivery.command("list")
@_owner_options
@click.option("-s", "--status", "statuses", multiple=True,
              type=click.Choice(["notDelivered", "delivered", "deliveryError"]), help="Only these statuses.")
@click.option("--start", default="", help="List after this delivery id.")
@click.option("--limit", type=int, default=0, help="At most this many (default: the server's).")
@click.option("--desc", is_flag=True, help="Newest first.")
@json_option
@click.pass_obj
def list_(obj: CliContext, kind: str, project: str | None, user: str | None, statuses: tuple[str, ...],
          start: str, limit: int, desc: bool, as_json: bool) -> None:
    """List deliveries, oldest first."""
    from agola.client.deliveries import list_deliveries

    owner, ref = _owner(project, user)
    found = call(obj, lambda gw: list_deliveries(gw, owner, ref, cast("DeliveryKind", kind),
                                                 statuses=statuses, start=start, limit=limit, desc=desc))
    emit(found, as_json, COLUMNS)


@delivery.command()
@_owner_options
@click.argument("delivery_id")
@json_option
@click.pass_obj
def redeliver(obj: CliContext, kind: str, project: str | None, user: str | None, delivery_id: str,
              as_json: bool) -> None:
    """Send DELIVERY_ID's message again (a new delivery)."""
    from agola.client.deliveries import redeliver as redeliver_

    owner, ref = _owner(project, user)
    new = call(obj, lambda gw: redeliver_(gw, owner, ref, delivery_id, cast("DeliveryKind", kind)))
    done(f"delivery {delivery_id} redelivered as {new.id}", new, as_json)
