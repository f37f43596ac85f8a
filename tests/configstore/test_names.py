from __future__ import annotations

import pytest

from agola.errors import BadRequest
from agola.services.configstore.names import (
    ObjectPath,
    check_name,
    is_ancestor_or_self,
    is_uuid,
    is_valid_name,
    join_path,
    parse_name_ref,
    parse_path,
    parse_path_ref,
)

UUID = "a6e0c3f4-3b7e-4d4c-9a3e-2d1c2b3a4f5e"


@pytest.mark.parametrize(
    "name",
    [
        "bar",
        "foo-bar",
        "foo-1-bar",
        "f12oo-bar33",
        "ab",
        "A1",
        # hex-looking strings of lengths a UUID never has
        "a" * 35,
        "a" * 33,
        "a" * 31,
        # 32 hex digits with a dash: not any UUID spelling (Python's own parser would accept it)
        "abcdef01-23456789abcdef0123456789",
        # 36 characters with dashes in the wrong places
        "abcdef0-123-4567-89ab-cdef012345678",
    ],
)
def test_valid_names(name: str) -> None:
    assert is_valid_name(name)
    check_name("user", name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a",
        "foo bar",
        "-foo",
        "foo-",
        "foo--bar",
        "foo.bar",
        "foo_bar",
        "foo#bar",
        "1foo",
        "ä-bar",
        UUID,
        UUID.upper(),
        UUID.replace("-", ""),
        "{" + UUID + "}",
        "urn:uuid:" + UUID,
    ],
)
def test_invalid_names(name: str) -> None:
    assert not is_valid_name(name)
    with pytest.raises(BadRequest):
        check_name("user", name)


def test_check_name_messages() -> None:
    with pytest.raises(BadRequest, match="org name required"):
        check_name("org", "")
    with pytest.raises(BadRequest, match="invalid project name 'a_b'"):
        check_name("project", "a_b")
    check_name("user", "u" * 100)
    with pytest.raises(BadRequest, match=r"invalid user name: at most 100 characters \(got 101\)"):
        check_name("user", "u" * 101)


@pytest.mark.parametrize(
    "text,expected",
    [
        (UUID, True),
        (UUID.upper(), True),
        (UUID.replace("-", ""), True),
        ("{" + UUID + "}", True),
        ("urn:uuid:" + UUID, True),
        ("urn:uuid:" + UUID.replace("-", ""), True),
        ("{" + UUID.replace("-", "") + "}", False),
        ("g" + UUID[1:], False),
        ("user01", False),
    ],
)
def test_uuid_spellings(text: str, expected: bool) -> None:
    assert is_uuid(text) is expected


@pytest.mark.parametrize(
    "ref,kind,value",
    [
        ("user01", "name", "user01"),
        (UUID, "id", UUID),
        (UUID.upper(), "id", UUID),  # ids are canonicalized
        ("{" + UUID + "}", "id", UUID),
    ],
)
def test_name_refs(ref: str, kind: str, value: str) -> None:
    parsed = parse_name_ref(ref)
    assert (parsed.kind, parsed.value) == (kind, value)


@pytest.mark.parametrize(
    "ref,kind,path",
    [
        ("user/user01", "path", ObjectPath("user", "user01")),
        ("user%2Fuser01", "path", ObjectPath("user", "user01")),
        ("org/org01/pg1/proj", "path", ObjectPath("org", "org01", ("pg1", "proj"))),
        (UUID, "id", None),
        ("someid", "id", None),
    ],
)
def test_path_refs(ref: str, kind: str, path: ObjectPath | None) -> None:
    parsed = parse_path_ref(ref)
    assert parsed.kind == kind
    assert parsed.path == path


@pytest.mark.parametrize("path", ["user", "team/x", "user//a", "org/o/", "/org/o"])
def test_bad_paths(path: str) -> None:
    with pytest.raises(BadRequest, match="wrong path"):
        parse_path(path)


def test_object_path_helpers() -> None:
    p = parse_path("org/o/a/b")
    assert str(p) == "org/o/a/b"
    assert p.owner_path == "org/o"
    assert p.parent == ObjectPath("org", "o", ("a",))
    assert p.last_name == "b"
    assert not p.is_root and p.parent.parent.is_root
    assert join_path("org/o", "") == "org/o"
    assert join_path("org/o", "a") == "org/o/a"
    assert is_ancestor_or_self("org/o", "org/o/a")
    assert is_ancestor_or_self("org/o", "org/o")
    assert not is_ancestor_or_self("org/o", "org/o2/a")


def test_long_almost_valid_names_are_rejected_without_backtracking() -> None:
    # The reference's regexp spelled as-is backtracks exponentially in Python on such input.
    assert not is_valid_name("a" * 5000 + "-")
    assert not is_valid_name("a1" * 2000 + "--b")
    assert is_valid_name("a" * 5000)
