"""The readdb's handling of feed batches (the feed itself is tested with the datamanager)."""

from __future__ import annotations

import json

from agola.services.configstore.readdb import ConfigReadDB
from agola.storage.datamanager import Action, FeedBatch
from agola.types.configstore import Organization, User


def put(obj: User | Organization, datatype: str) -> Action:
    return Action.put(datatype, obj.id, json.dumps(obj.to_json()).encode())


def test_full_resync_is_swapped_in_only_when_complete() -> None:
    db = ConfigReadDB(dm=None)  # type: ignore[arg-type]
    db.apply(FeedBatch([put(User(id="u1", name="user01"), "user")], "", reset=True))
    db.apply(FeedBatch([], "0001-1", 5, change_groups={"g1": 4}, change_groups_reset=True, synced=True))
    assert db.synced and db.state.user_by_name("user01") is not None
    assert db.token(["g1", "g2"]).change_groups_revisions == {"g1": 4, "g2": 0}
    assert db.token(["g1"]).cur_revision == 5

    # an import: a new full sync starts; readers keep the old, complete view until it ends
    db.apply(FeedBatch([put(User(id="u2", name="user02"), "user")], "", reset=True))
    assert not db.synced
    assert db.state.user_by_name("user01") is not None and db.state.user_by_name("user02") is None
    db.apply(FeedBatch([put(Organization(id="o1", name="org01"), "org")], "0002-1"))
    db.apply(FeedBatch([], "0002-1", 9, change_groups={"g3": 8}, change_groups_reset=True, synced=True))
    assert db.synced
    assert db.state.user_by_name("user01") is None
    assert db.state.user_by_name("user02") is not None and db.state.org_by_name("org01") is not None
    assert db.token(["g1", "g3"]).change_groups_revisions == {"g1": 0, "g3": 8}


def test_deletes_and_change_group_removal() -> None:
    db = ConfigReadDB(dm=None)  # type: ignore[arg-type]
    db.apply(FeedBatch([put(User(id="u1", name="user01"), "user")], "0001-1", 3, reset=True,
                       change_groups={"g": 2}, change_groups_reset=True, synced=True))
    db.apply(FeedBatch([Action.delete("user", "u1")], "0001-2", 4, change_groups={"g": 0}, synced=True))
    assert db.state.user_by_name("user01") is None
    assert db.token(["g"]).change_groups_revisions == {"g": 0}
    assert (db.wal_sequence, db.revision) == ("0001-2", 4)


def test_an_undecodable_object_is_skipped() -> None:
    db = ConfigReadDB(dm=None)  # type: ignore[arg-type]
    db.apply(FeedBatch([Action.put("user", "bad", b"{not json"), put(User(id="u1", name="user01"), "user")],
                       "0001-1", 1, reset=True, synced=True))
    assert db.state.count("user") == 1
