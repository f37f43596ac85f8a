"""Gitea webhook parsing on the reference pack's real payloads: the signature is checked first and
is mandatory; push, tag and pull request deliveries become the event a run is built from."""

from __future__ import annotations

from pathlib import Path

import pytest

from agola.errors import BadRequest
from agola.forges import EventKind, WebhookRejected
from agola.forges.gitea import parse_webhook, sign

PACK = Path(__file__).resolve().parents[1] / "support" / "forge" / "pack" / "gitea"
SECRET = "agola-webhook-secret"

pytestmark = pytest.mark.skipif(not PACK.is_dir(), reason="reference pack not present")


def headers(event: str, body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Gitea-Event": event, "X-Gitea-Delivery": "d-1", "X-Gitea-Signature": sign(secret, body)}


def test_signature_matches_the_reference_vector() -> None:
    body = (PACK / "webhook_push_branch.json").read_bytes()
    assert sign(SECRET, body) == "83f688d427911f7246a909d03538508ac6a4a1797c2b1daaa595a2ebe37686fd"


@pytest.mark.parametrize("tamper", ["unsigned", "wrong secret", "body changed"])
def test_unsigned_or_forged_deliveries_are_rejected(tamper: str) -> None:
    body = (PACK / "webhook_push_branch.json").read_bytes()
    h = headers("push", body)
    if tamper == "unsigned":
        del h["X-Gitea-Signature"]
    elif tamper == "wrong secret":
        h = headers("push", body, "other")
    else:
        body = body.replace(b"master", b"evil", 1)
    with pytest.raises(WebhookRejected):
        parse_webhook(h, body, SECRET)


def test_signature_checked_before_the_payload_is_read() -> None:
    with pytest.raises(WebhookRejected):
        parse_webhook({"X-Gitea-Event": "push", "X-Gitea-Signature": "00"}, b"{not json", SECRET)
    body = b"{not json"
    with pytest.raises(BadRequest):
        parse_webhook(headers("push", body), body, SECRET)


def test_push_to_a_branch() -> None:
    body = (PACK / "webhook_push_branch.json").read_bytes()
    ev = parse_webhook(headers("push", body), body, SECRET)
    assert ev is not None and ev.kind == EventKind.PUSH
    assert ev.ref.startswith("refs/heads/") and ev.branch == ev.ref.removeprefix("refs/heads/")
    assert len(ev.commit_sha) == 40 and ev.message and ev.sender
    assert ev.compare_link and ev.commit_link.endswith(ev.commit_sha) and ev.delivery_id == "d-1"
    assert ev.repo_path.count("/") == 1 and ev.ssh_url


def test_tag_push_builds_the_tagged_commit() -> None:
    body = (PACK / "webhook_push_tag.CONSTRUCTED.json").read_bytes()
    ev = parse_webhook(headers("push", body), body, SECRET)
    assert ev is not None and ev.kind == EventKind.TAG
    assert ev.message == f"Tag {ev.tag}" and ev.ref == f"refs/tags/{ev.tag}"


@pytest.mark.parametrize(("name", "fork"), [("webhook_pull_request_opened_fork.json", True),
                                            ("webhook_pull_request_opened_same_repo.json", False),
                                            ("webhook_pull_request_synchronized_gitea1.2x.json", False)])
def test_pull_requests(name: str, fork: bool) -> None:
    body = (PACK / name).read_bytes()
    ev = parse_webhook(headers("pull_request", body), body, SECRET)
    assert ev is not None and ev.kind == EventKind.PULL_REQUEST
    assert ev.from_fork is fork
    assert ev.ref == f"refs/pull/{ev.pull_request_id}/head"


def test_events_agola_does_not_build_create_nothing() -> None:
    body = (PACK / "webhook_create_tag.json").read_bytes()
    assert parse_webhook(headers("create", body), body, SECRET) is None
    deleted = b'{"ref": "refs/heads/x", "after": "' + b"0" * 40 + b'", "repository": {}}'
    assert parse_webhook(headers("push", deleted), deleted, SECRET) is None
