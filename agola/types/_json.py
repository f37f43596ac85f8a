"""JSON (de)serialization of wire types, driven by attrs field metadata and type hints.

A wire type is an attrs class inheriting ``JSONType`` whose fields are declared with ``jfield``:
the JSON key, and whether the field is omitted when empty (Go's ``omitempty``). Everything else
comes from the type annotation: ``str``/``int``/``bool``/``float``, ``datetime`` (RFC3339, UTC),
``timedelta`` (integer nanoseconds, like Go's ``time.Duration``), string enums, ``list[T]``,
``dict[str, T]``, ``T | None`` and nested wire types.

Parsing is strict, because these payloads come from other roles and from users: an unknown key, a
missing required field (an attrs field without default) or a value of the wrong type raises
``BadRequest`` naming the field by its JSON path (``run_config_tasks.t1.runtime.containers[0]``).
``null`` means "absent", as in Go.

A class may take over its own decoding with a ``__json_decode__(raw, path)`` classmethod (used for
polymorphic values such as steps); encoding always follows the value's concrete class.
"""

from __future__ import annotations

import enum
import json
import types
import typing
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, TypeVar

import attrs

from agola.errors import BadRequest

_JSON_KEY = "agola_json"
_OMITEMPTY_KEY = "agola_omitempty"

T = TypeVar("T", bound="JSONType")


def jfield(
    name: str,
    *,
    omitempty: bool = True,
    default: Any = attrs.NOTHING,
    factory: Callable[[], Any] | None = None,
    converter: Any = None,
) -> Any:
    """An attrs field serialized under JSON key ``name``.

    Without ``default``/``factory`` the field is required when parsing.
    ``omitempty=False`` always writes the key (``null`` for ``None``), as the Go types do for the
    fields the spec marks "NOT omitempty".
    """
    metadata = {_JSON_KEY: name, _OMITEMPTY_KEY: omitempty}
    if factory is not None:
        return attrs.field(factory=factory, metadata=metadata, converter=converter)
    return attrs.field(default=default, metadata=metadata, converter=converter)


class JSONType:
    """Mixin giving an attrs wire type ``to_json()`` and ``from_json()``."""

    __slots__ = ()

    def to_json(self) -> dict[str, Any]:
        """The JSON object (plain dicts/lists/str/int/bool/None) of this value."""
        return encode_object(self)

    def to_json_bytes(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls: type[T], data: Any, *, path: str = "") -> T:
        """Parse a decoded JSON object, or JSON text/bytes; raises ``BadRequest`` on bad input."""
        if isinstance(data, (str, bytes, bytearray)):
            try:
                data = json.loads(data)
            except ValueError as exc:
                raise BadRequest(f"invalid JSON: {exc}") from None
        return decode_value(data, cls, path)  # type: ignore[no-any-return]


# -- time ------------------------------------------------------------------------------------


def format_time(value: datetime) -> str:
    """RFC3339 in UTC with a ``Z`` suffix; fractional seconds only when present."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def parse_time(raw: str, path: str = "") -> datetime:
    """Parse an RFC3339 timestamp (Go writes up to nanoseconds; we keep microseconds)."""
    try:
        if "T" not in raw and "t" not in raw:
            raise ValueError("missing 'T' separator")
        value = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError:
        raise BadRequest(f"{_where(path)}invalid RFC3339 timestamp {raw!r}") from None
    if value.tzinfo is None:
        raise BadRequest(f"{_where(path)}timestamp {raw!r} has no timezone")
    return value.astimezone(timezone.utc)


# -- encoding --------------------------------------------------------------------------------


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if attrs.has(type(value)):
        # Go never omits a non-pointer struct; our nested optional structs are ``X | None``.
        return False
    if isinstance(value, bool):
        return not value
    if isinstance(value, (str, int, float, list, dict, tuple, timedelta)):
        return not value
    return False


def encode_value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float)) and not isinstance(value, enum.Enum):
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, timedelta):
        return value // timedelta(microseconds=1) * 1000
    if isinstance(value, (list, tuple)):
        return [encode_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode_value(v) for k, v in value.items()}
    if attrs.has(type(value)):
        return encode_object(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def encode_object(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec in _plan(type(obj)):
        value = getattr(obj, spec.attr)
        if spec.omitempty and _is_empty(value):
            continue
        out[spec.key] = encode_value(value)
    return out


# -- decoding --------------------------------------------------------------------------------


@attrs.frozen
class _FieldSpec:
    attr: str
    key: str
    omitempty: bool
    tp: Any
    required: bool


_PLANS: dict[type, list[_FieldSpec]] = {}


def _plan(cls: type) -> list[_FieldSpec]:
    plan = _PLANS.get(cls)
    if plan is None:
        hints = typing.get_type_hints(cls)
        plan = []
        for f in attrs.fields(cls):
            key = f.metadata.get(_JSON_KEY)
            if key is None:
                continue  # not on the wire
            plan.append(
                _FieldSpec(
                    attr=f.name,
                    key=key,
                    omitempty=f.metadata.get(_OMITEMPTY_KEY, True),
                    tp=hints[f.name],
                    required=f.default is attrs.NOTHING,
                )
            )
        _PLANS[cls] = plan
    return plan


def json_keys(cls: type) -> frozenset[str]:
    """The JSON keys a wire type reads and writes."""
    return frozenset(spec.key for spec in _plan(cls))


def _where(path: str) -> str:
    return f"{path}: " if path else ""


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _kind(raw: Any) -> str:
    if raw is None:
        return "null"
    if isinstance(raw, bool):
        return "a boolean"
    if isinstance(raw, (int, float)):
        return "a number"
    if isinstance(raw, str):
        return "a string"
    if isinstance(raw, list):
        return "an array"
    if isinstance(raw, dict):
        return "an object"
    return type(raw).__name__


def _wrong(path: str, expected: str, raw: Any) -> BadRequest:
    return BadRequest(f"{_where(path)}expected {expected}, got {_kind(raw)}")


def decode_object(raw: Any, cls: type, path: str) -> Any:
    if not isinstance(raw, dict):
        raise _wrong(path, "an object", raw)
    plan = _plan(cls)
    known = {spec.key for spec in plan}
    for key in raw:
        if key not in known:
            raise BadRequest(f"{_where(path)}unknown field {key!r}")
    kwargs: dict[str, Any] = {}
    for spec in plan:
        value = raw.get(spec.key)
        if value is None:
            if spec.required:
                raise BadRequest(f"{_join(path, spec.key)}: missing required field")
            continue
        kwargs[spec.attr] = decode_value(value, spec.tp, _join(path, spec.key))
    return cls(**kwargs)


def decode_value(raw: Any, tp: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if raw is None:
            return None
        if len(args) != 1:
            raise TypeError(f"unsupported union {tp}")
        return decode_value(raw, args[0], path)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise _wrong(path, "an array", raw)
        return [decode_value(v, item_tp, f"{path}[{i}]") for i, v in enumerate(raw)]
    if origin is dict:
        _key_tp, item_tp = typing.get_args(tp)
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise _wrong(path, "an object", raw)
        return {k: decode_value(v, item_tp, _join(path, k)) for k, v in raw.items()}
    if tp is typing.Any:
        return raw
    if not isinstance(tp, type):
        raise TypeError(f"unsupported type {tp}")
    if attrs.has(tp):
        hook = tp.__dict__.get("__json_decode__")
        if hook is not None:
            return hook.__get__(None, tp)(raw, path)
        return decode_object(raw, tp, path)
    if issubclass(tp, enum.Enum):
        try:
            return tp(raw)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in tp)
            raise BadRequest(f"{_where(path)}invalid value {raw!r}, expected one of {allowed}") from None
    if tp is bool:
        if not isinstance(raw, bool):
            raise _wrong(path, "a boolean", raw)
        return raw
    if tp is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            if isinstance(raw, float) and raw.is_integer():
                return int(raw)
            raise _wrong(path, "an integer", raw)
        return raw
    if tp is float:
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise _wrong(path, "a number", raw)
        return float(raw)
    if tp is str:
        if not isinstance(raw, str):
            raise _wrong(path, "a string", raw)
        return raw
    if tp is datetime:
        if not isinstance(raw, str):
            raise _wrong(path, "an RFC3339 timestamp string", raw)
        return parse_time(raw, path)
    if tp is timedelta:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise _wrong(path, "a duration in integer nanoseconds", raw)
        if raw < 0:
            raise BadRequest(f"{_where(path)}duration must not be negative")
        return timedelta(microseconds=raw // 1000)
    raise TypeError(f"unsupported type {_type_name(tp)}")
