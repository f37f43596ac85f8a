"""Wire types of the notification role (Agola v0.9): run webhook and commit status deliveries,
as stored by the notification role and answered by its API and the gateway's.

A *delivery* is one attempt series at sending one message (a run webhook payload, or one commit
status) to its destination. It stays ``notDelivered`` while attempts are still due (each failed
attempt records its status code and pushes ``next_attempt_at`` back), becomes ``delivered`` on a
2xx, or ``deliveryError`` after the last allowed attempt. A redelivery is a new delivery of the
same message.
"""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

from agola.types._json import JSONType, jfield


class DeliveryStatus(enum.StrEnum):
    NOT_DELIVERED = "notDelivered"
    DELIVERED = "delivered"
    DELIVERY_ERROR = "deliveryError"


class DeliveryKind(enum.StrEnum):
    RUN_WEBHOOK = "runwebhook"
    COMMIT_STATUS = "commitstatus"


class OwnerType(enum.StrEnum):
    """Whose runs a delivery is about: a project's, or a user's direct runs."""

    PROJECT = "project"
    USER = "user"


@attrs.frozen
class CommitStatusMessage(JSONType):
    """What a commit status delivery sets on the forge."""

    project_id: str = jfield("project_id")
    commit_sha: str = jfield("commit_sha")
    state: str = jfield("state")  # agola.forges.CommitState
    context: str = jfield("context", default="")
    description: str = jfield("description", default="")
    target_url: str = jfield("target_url", default="")


@attrs.frozen
class Delivery(JSONType):
    """A stored delivery (the notification role's own record; its API answers ``DeliveryResponse``)."""

    id: str = jfield("id")
    sequence: int = jfield("sequence", omitempty=False)
    kind: DeliveryKind = jfield("kind")
    owner_type: OwnerType = jfield("owner_type")
    owner_id: str = jfield("owner_id")
    run_id: str = jfield("run_id", default="")
    # The message: the webhook body (run webhooks) or the status to set (commit statuses).
    payload: str = jfield("payload", default="")
    commit_status: CommitStatusMessage | None = jfield("commit_status", default=None)
    delivery_status: DeliveryStatus = jfield("delivery_status", default=DeliveryStatus.NOT_DELIVERED)
    created_at: datetime | None = jfield("created_at", default=None)
    delivered_at: datetime | None = jfield("delivered_at", default=None)
    status_code: int = jfield("status_code", omitempty=False, default=0)
    attempts: int = jfield("attempts", omitempty=False, default=0)
    next_attempt_at: datetime | None = jfield("next_attempt_at", default=None)
    last_error: str = jfield("last_error", default="")
    # The delivery this one redelivers ("" for the first).
    redelivery_of: str = jfield("redelivery_of", default="")

    def response(self) -> DeliveryResponse:
        state = self.commit_status.state if self.commit_status is not None else ""
        return DeliveryResponse(
            id=self.id, sequence=self.sequence, delivery_status=self.delivery_status,
            delivered_at=self.delivered_at, status_code=self.status_code, attempts=self.attempts,
            run_id=self.run_id, created_at=self.created_at, last_error=self.last_error,
            redelivery_of=self.redelivery_of, commit_status_state=state)


@attrs.frozen
class DeliveryResponse(JSONType):
    """A delivery as the APIs list it: Agola's ``RunWebhookDeliveryResponse`` fields (id,
    sequence, delivery_status, delivered_at, status_code), then ours."""

    id: str = jfield("id")
    sequence: int = jfield("sequence", omitempty=False)
    delivery_status: DeliveryStatus = jfield("delivery_status")
    delivered_at: datetime | None = jfield("delivered_at", omitempty=False, default=None)
    status_code: int = jfield("status_code", omitempty=False, default=0)
    attempts: int = jfield("attempts", omitempty=False, default=0)
    run_id: str = jfield("run_id", default="")
    created_at: datetime | None = jfield("created_at", default=None)
    last_error: str = jfield("last_error", default="")
    redelivery_of: str = jfield("redelivery_of", default="")
    commit_status_state: str = jfield("commit_status_state", default="")


__all__ = ["CommitStatusMessage", "Delivery", "DeliveryKind", "DeliveryResponse", "DeliveryStatus", "OwnerType"]
