"""Wire compatibility of the configstore types: JSON as the reference writes and reads it."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agola.errors import BadRequest
from agola.services.configstore.names import is_uuid, is_valid_name, parse_name_ref
from agola.types.configstore import (
    DATATYPES,
    LinkedAccount,
    Organization,
    Parent,
    Project,
    ProjectGroup,
    ProjectGroupResponse,
    RemoteSource,
    Secret,
    SecretResponse,
    User,
    Variable,
    VariableValue,
    When,
    WhenCondition,
    WhenConditions,
)

T0 = dt.datetime(2019, 11, 19, 10, 0, 0, 123456, tzinfo=dt.UTC)

SAMPLES = [
    User(id="u", name="user01", secret="s", admin=True, tokens={"t": "h"},
         linked_accounts={"la": LinkedAccount(id="la", remote_user_id="1", remote_user_name="x", remote_source_id="rs",
                                              oauth2_access_token="a", oauth2_access_token_expires_at=T0)}),
    Organization(id="o", name="org01", visibility="private", creator_user_id="u", created_at=T0),
    ProjectGroup(id="g", name="", parent=Parent("org", "o"), visibility="public"),
    RemoteSource(id="r", name="gitea01", api_url="http://h", type="gitea", auth_type="password",
                 registration_enabled=False, login_enabled=True, skip_verify=True),
    Project(id="p", name="p1", parent=Parent("projectgroup", "g"), visibility="public",
            remote_repository_config_type="remotesource", remote_source_id="r", linked_account_id="la",
            repository_id="1", repository_path="o/r", webhook_secret="w", pass_vars_to_forked_pr=True),
    Secret(id="s", name="s1", parent=Parent("project", "p"), type="internal", data={"k": "v"}),
    Variable(id="v", name="v1", parent=Parent("project", "p"), values=[
        VariableValue("s1", "k", When(tag=WhenConditions(include=[WhenCondition("regexp", "^v")],
                                                         exclude=[WhenCondition("simple", "v0")])))]),
]


@pytest.mark.parametrize("obj", SAMPLES, ids=lambda o: type(o).__name__)
def test_round_trip_through_json_text(obj: object) -> None:
    cls = type(obj)
    text = json.dumps(obj.to_json())  # type: ignore[attr-defined]
    assert cls.from_json(json.loads(text)) == obj  # type: ignore[attr-defined]
    assert cls in DATATYPES.values()


def test_reference_json_names_and_omitempty() -> None:
    la = LinkedAccount(id="la", remote_user_name="bob").to_json()
    assert la == {"id": "la", "remote_username": "bob", "oauth_2_access_token_expires_at": "0001-01-01T00:00:00Z"}
    assert RemoteSource(api_url="u", oauth2_client_id="c").to_json() == {
        "apiurl": "u", "client_id": "c", "registration_enabled": True, "login_enabled": True}
    assert ProjectGroup(name="").to_json() == {"parent": {}}
    assert Organization(name="o", created_at=T0).to_json()["created_at"] == "2019-11-19T10:00:00.123456Z"


def test_decodes_what_the_reference_writes() -> None:
    # Go writes nanoseconds, zero times, nulls for empty maps, and no *bool when unset.
    org = Organization.from_json({"id": "o", "name": "org01", "created_at": "2019-11-19T11:00:00.123456789+01:00"})
    assert org.created_at == T0
    user = User.from_json({"id": "u", "name": "n", "linked_accounts": None, "tokens": None})
    assert user.linked_accounts == {} and user.tokens == {}
    la = LinkedAccount.from_json({"oauth_2_access_token_expires_at": "0001-01-01T00:00:00Z"})
    assert la.oauth2_access_token_expires_at is None
    rs = RemoteSource.from_json({"name": "x"})
    assert rs.registration_enabled and rs.login_enabled
    # unknown keys (newer writers) are ignored
    assert Secret.from_json({"name": "s", "future_field": 1}).name == "s"


@pytest.mark.parametrize("bad", [{"name": 1}, {"admin": "yes"}, {"tokens": []}, {"linked_accounts": {"x": 3}}, []])
def test_wrong_shapes_are_bad_requests(bad: object) -> None:
    with pytest.raises(BadRequest):
        User.from_json(bad)


def test_augmented_responses_flatten_the_object() -> None:
    resp = ProjectGroupResponse(ProjectGroup(id="g", name="a", parent=Parent("projectgroup", "r")), "org", "o",
                                "org/x/a", "org/x", "public")
    data = resp.to_json()
    assert data["id"] == "g" and data["OwnerType"] == "org" and data["Path"] == "org/x/a"
    assert ProjectGroupResponse.from_json(data) == resp
    sr = SecretResponse(Secret(id="s", name="s1"), "org/x")
    assert SecretResponse.from_json(sr.to_json()) == sr


# no per-example deadline: timing on a loaded 2-core machine is not what these tests check
@settings(deadline=None)
@given(st.text(alphabet="abcdefABCDEF0123456789-", min_size=2, max_size=40))
def test_a_valid_name_is_never_an_id(text: str) -> None:
    if is_valid_name(text):
        assert not is_uuid(text)
        assert parse_name_ref(text).kind == "name"


@settings(deadline=None)
@given(st.uuids())
def test_every_uuid_spelling_is_an_id(u: object) -> None:
    for spelling in (str(u), str(u).upper(), str(u).replace("-", ""), "{" + str(u) + "}", "urn:uuid:" + str(u)):
        assert not is_valid_name(spelling)
        ref = parse_name_ref(spelling)
        assert (ref.kind, ref.value) == ("id", str(u))
