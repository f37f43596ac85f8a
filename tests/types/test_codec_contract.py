"""Contract of the one wire codec (``agola.types._json``) over every wire type in ``agola.types``.

The wire types are found by walking the modules, so a new one is covered without touching this
file: each gets an example value with every field set (built from its annotations), which must
survive ``to_json`` -> JSON text -> ``from_json``; each rejects a wrongly typed value with a
``BadRequest`` naming the key; and unknown keys are rejected (runservice: messages between roles)
or ignored (configstore: stored objects a newer version may extend).
"""

from __future__ import annotations

import enum
import json
import re
import types
import typing
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

import agola.types.configstore
import agola.types.runservice
from agola.errors import BadRequest
from agola.types import GoTime, JSONType
from agola.types._json import _EMBEDDED_KEY, _JSON_KEY

T0 = datetime(2024, 2, 3, 4, 5, 6, 789000, tzinfo=UTC)

# module -> does decoding reject unknown keys?
MODULES: dict[types.ModuleType, bool] = {
    agola.types.runservice: True,
    agola.types.configstore: False,
}


def wire_types(module: types.ModuleType) -> list[type[JSONType]]:
    found: list[type[JSONType]] = []
    for obj in vars(module).values():
        # (a class's module: not the ones imported; attrs: not abstract bases like ConfigstoreType)
        if isinstance(obj, type) and obj.__module__ == module.__name__ and attrs.has(obj):
            if issubclass(obj, JSONType):
                found.append(obj)
    return found


ALL = [(cls, rejects) for module, rejects in MODULES.items() for cls in wire_types(module)]
IDS = [f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}" for cls, _ in ALL]


def test_every_module_has_wire_types() -> None:
    for module in MODULES:
        assert len(wire_types(module)) >= 5, module.__name__


# -- example values --------------------------------------------------------------------------


def _is_polymorphic(cls: type) -> bool:
    """A base whose ``__json_decode__`` picks a subclass (steps): examples use a subclass."""
    return "__json_decode__" in cls.__dict__ and bool(cls.__subclasses__())


def example(tp: Any) -> Any:
    """A non-empty value of type ``tp`` (so that ``omitempty`` drops nothing)."""
    if tp == GoTime or tp is datetime:
        return T0
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return example(inner)
    if origin is list:
        return [example(typing.get_args(tp)[0])]
    if origin is dict:
        return {"k": example(typing.get_args(tp)[1])}
    if tp is str:
        return "x"
    if tp is int:
        return 7
    if tp is bool:
        return True
    if tp is float:
        return 1.5
    if tp is timedelta:
        return timedelta(seconds=15)
    if tp is Any:
        return {"any": [1, "json"]}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return list(tp)[-1]
    if isinstance(tp, type) and attrs.has(tp):
        return example_object(tp)
    raise AssertionError(f"no example for {tp!r}: teach tests/types/test_codec_contract.py")


def example_object(cls: type) -> Any:
    if _is_polymorphic(cls):
        cls = cls.__subclasses__()[0]
    hints = typing.get_type_hints(cls, include_extras=True)
    kwargs: dict[str, Any] = {}
    for f in attrs.fields(cls):
        on_wire = _JSON_KEY in f.metadata or _EMBEDDED_KEY in f.metadata
        # An enum default is a discriminator (a step's type) or a state: kept. (attrs.NOTHING is
        # an enum member too: a required field.)
        keeps_default = f.default is not attrs.NOTHING and isinstance(f.default, enum.Enum)
        if on_wire and not keeps_default:
            kwargs[f.name] = example(hints[f.name])
    return cls(**kwargs)


def wire_fields(cls: type) -> list[tuple[str, Any]]:
    """(JSON key, annotation) of the fields of ``cls`` with a key of their own."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return [(f.metadata[_JSON_KEY], hints[f.name]) for f in attrs.fields(cls) if _JSON_KEY in f.metadata]


# -- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "rejects_unknown"), ALL, ids=IDS)
def test_round_trip_through_json_text(cls: type[JSONType], rejects_unknown: bool) -> None:
    obj = example_object(cls)
    data = obj.to_json()
    text = json.dumps(data)
    back = cls.from_json(json.loads(text))
    assert back == obj
    assert back.to_json() == data
    assert cls.from_json(text) == obj  # JSON text is accepted as such


@pytest.mark.parametrize(("cls", "rejects_unknown"), ALL, ids=IDS)
def test_empty_object_decodes_to_the_defaults(cls: type[JSONType], rejects_unknown: bool) -> None:
    if _is_polymorphic(cls):
        return  # the discriminator is required: see test_a_polymorphic_value_needs_its_kind
    required = [key for key, _ in wire_fields(cls) if _field_by_key(cls, key).default is attrs.NOTHING]
    if required:
        with pytest.raises(BadRequest, match=f"^{re.escape(required[0])}: missing required field"):
            cls.from_json({})
        return
    hints = typing.get_type_hints(cls)
    embedded = {name: hints[name]() for name, _ in _embedded_fields(cls)}
    assert cls.from_json({}) == cls(**embedded)


def test_a_polymorphic_value_needs_its_kind() -> None:
    from agola.types.runservice import Step

    with pytest.raises(BadRequest, match=r"^type: unknown step type None"):
        Step.from_json({})


def _field_by_key(cls: type, key: str) -> attrs.Attribute[Any]:
    return next(f for f in attrs.fields(cls) if f.metadata.get(_JSON_KEY) == key)


def _embedded_fields(cls: type) -> list[tuple[str, attrs.Attribute[Any]]]:
    return [(f.name, f) for f in attrs.fields(cls) if _EMBEDDED_KEY in f.metadata]


# -- unknown keys -----------------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "rejects_unknown"), ALL, ids=IDS)
def test_unknown_keys(cls: type[JSONType], rejects_unknown: bool) -> None:
    obj = example_object(cls)
    data = {**obj.to_json(), "a_future_field": 1}
    if rejects_unknown:
        with pytest.raises(BadRequest, match="unknown field 'a_future_field'"):
            cls.from_json(data)
    else:
        assert cls.from_json(data) == obj


# -- wrong types ------------------------------------------------------------------------------


def wrong_value(tp: Any) -> Any:
    """A JSON value ``tp`` must refuse (None where any value is fine)."""
    if tp is Any:
        return None
    if tp == GoTime or tp is datetime:
        return 12
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return wrong_value(inner)
    if origin is list:
        return {"not": "a list"}
    if origin is dict or (isinstance(tp, type) and attrs.has(tp)):
        return ["not", "an object"]
    if tp is str:
        return 12
    if tp in (int, float, bool, timedelta):
        return [1]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "not-a-member"
    raise AssertionError(f"no wrong value for {tp!r}")


WRONG = [
    (cls, key, tp)
    for cls, _ in ALL
    if not _is_polymorphic(cls)
    for key, tp in wire_fields(cls)
    if wrong_value(tp) is not None
]


@pytest.mark.parametrize(
    ("cls", "key", "tp"), WRONG, ids=[f"{c.__name__}.{k}" for c, k, _ in WRONG]
)
def test_a_wrong_type_is_a_bad_request_naming_the_key(cls: type[JSONType], key: str, tp: Any) -> None:
    data = {**example_object(cls).to_json(), key: wrong_value(tp)}
    with pytest.raises(BadRequest) as info:
        cls.from_json(data)
    assert str(info.value).startswith(f"{key}"), str(info.value)


def test_nested_errors_name_the_whole_key_path() -> None:
    from agola.types.configstore import User
    from agola.types.runservice import RunConfig

    with pytest.raises(BadRequest, match=r"^linked_accounts\.la\.remote_username: expected a string"):
        User.from_json({"linked_accounts": {"la": {"remote_username": 3}}})
    with pytest.raises(BadRequest, match=r"^tasks\.t1\.runtime\.containers\[0\]\.image: expected a string"):
        RunConfig.from_json(
            {"id": "r", "tasks": {"t1": {"id": "t1", "name": "t", "runtime": {"containers": [{"image": 1}]}}}}
        )


@pytest.mark.parametrize("bad", [[], "[]", 3, "not json"])
def test_a_non_object_is_a_bad_request(bad: Any) -> None:
    for cls, _ in ALL:
        with pytest.raises(BadRequest):
            cls.from_json(bad)


# -- the codec's Go compatibility features ----------------------------------------------------


def test_go_zero_time_is_none_and_always_written() -> None:
    from agola.types.configstore import Organization

    assert Organization().to_json() == {"created_at": "0001-01-01T00:00:00Z"}
    for zero in ("0001-01-01T00:00:00Z", "", None):
        assert Organization.from_json({"created_at": zero}).created_at is None
    # Go writes RFC3339Nano: nanoseconds, trailing zeros trimmed
    org = Organization.from_json({"created_at": "2024-02-03T05:05:06.789000001+01:00"})
    assert org.created_at == T0
    assert org.to_json()["created_at"] == "2024-02-03T04:05:06.789Z"


@pytest.mark.parametrize(("raw", "seconds"), [(15_000_000_000, 15), ("15s", 15), ("1h30m", 5400), (0, 0)])
def test_durations_are_integer_nanoseconds_or_go_strings(raw: int | str, seconds: int) -> None:
    from agola.types.runservice import ExecutorTaskSpecData

    data = ExecutorTaskSpecData.from_json({"task_timeout_interval": raw})
    assert data.task_timeout_interval == timedelta(seconds=seconds)


@pytest.mark.parametrize("raw", ["15 minutes", "-1s", -1, True])
def test_bad_durations_name_the_key(raw: int | str | bool) -> None:
    from agola.types.runservice import ExecutorTaskSpecData

    with pytest.raises(BadRequest, match=r"^task_timeout_interval: "):
        ExecutorTaskSpecData.from_json({"task_timeout_interval": raw})
