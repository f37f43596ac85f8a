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
    omitempty: bool | str = True,
    default: Any = attrs.NOTHING,
    factory: Callable[[], Any] | None = None,
    converter: Any = None,
) -> Any:
    """An attrs field serialized under JSON key ``name``.

    Without ``default``/``factory`` the field is required when parsing.
    ``omitempty=False`` always writes the key (``null`` for ``None``), as the Go types do for the
    fields the spec marks "NOT omitempty". ``omitempty="nil"`` omits only ``None`` (Go's
    ``*int`` with omitempty: a pointer to 0 is still written).
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
    elif value.utcoffset():
        value = value.astimezone(timezone.utc)
    text = value.replace(tzinfo=None).isoformat()
    if value.microsecond:
        text = text.rstrip("0")
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


# -- compiled codecs -------------------------------------------------------------------------
#
# Each type gets an encoder and a decoder closure built once from its annotations and cached:
# the runservice lists and stores runs by the thousand, so walking type hints per value would
# dominate. Encoders of attrs classes dispatch on the value's concrete class (polymorphic steps).

Encoder = Callable[[Any], Any]
Decoder = Callable[[Any, str], Any]


@attrs.frozen
class _FieldSpec:
    attr: str
    key: str
    omitempty: bool | str
    tp: Any
    required: bool


_PLANS: dict[type, list[_FieldSpec]] = {}
_ENCODERS: dict[Any, Encoder] = {}
_OBJECT_ENCODERS: dict[type, Callable[[Any], dict[str, Any]]] = {}
_DECODERS: dict[Any, Decoder] = {}


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


def _optional_arg(tp: Any) -> Any | None:
    """``T`` for ``T | None``, else None."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported union {tp}")
        return args[0]
    return None


# -- encoding --------------------------------------------------------------------------------


def _identity(value: Any) -> Any:
    return value


def _encode_timedelta(value: timedelta) -> int:
    return value // timedelta(microseconds=1) * 1000


def _encode_attrs(value: Any) -> dict[str, Any]:
    return _object_encoder(type(value))(value)


def _encoder(tp: Any) -> Encoder:
    enc = _ENCODERS.get(tp)
    if enc is None:
        enc = _build_encoder(tp)
        _ENCODERS[tp] = enc
    return enc


def _build_encoder(tp: Any) -> Encoder:
    inner = _optional_arg(tp)
    if inner is not None:
        inner_enc = _encoder(inner)
        if inner_enc is _identity:
            return _identity
        return lambda v: None if v is None else inner_enc(v)
    origin = typing.get_origin(tp)
    if origin is list:
        item = _encoder(typing.get_args(tp)[0])
        if item is _identity:
            return list
        return lambda v: [item(x) for x in v]
    if origin is dict:
        item = _encoder(typing.get_args(tp)[1])
        if item is _identity:
            return dict
        return lambda v: {k: item(x) for k, x in v.items()}
    if tp in (str, int, bool, float) or tp is typing.Any:
        return _identity
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return lambda v: v.value
    if tp is datetime:
        return format_time
    if tp is timedelta:
        return _encode_timedelta
    if isinstance(tp, type) and attrs.has(tp):
        return _encode_attrs
    raise TypeError(f"cannot encode {tp} as JSON")


def _object_encoder(cls: type) -> Callable[[Any], dict[str, Any]]:
    enc = _OBJECT_ENCODERS.get(cls)
    if enc is None:
        fields = [(s.attr, s.key, s.omitempty, _encoder(s.tp)) for s in _plan(cls)]

        def enc(obj: Any) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for attr, key, omitempty, field_enc in fields:
                value = getattr(obj, attr)
                # omitempty drops Go's zero values: None, "", 0, false, empty list/map. A nested
                # struct (attrs instances are always truthy) is never dropped, as in Go.
                if omitempty and (value is None if omitempty == "nil" else not value):
                    continue
                out[key] = field_enc(value)
            return out

        _OBJECT_ENCODERS[cls] = enc
    return enc


def encode_object(obj: Any) -> dict[str, Any]:
    return _object_encoder(type(obj))(obj)


# -- decoding --------------------------------------------------------------------------------


def _where(path: str) -> str:
    return f"{path}: " if path else ""


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


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
    """Decode an attrs wire type field by field (ignoring any ``__json_decode__`` hook)."""
    return _object_decoder(cls)(raw, path)


def decode_value(raw: Any, tp: Any, path: str) -> Any:
    return _decoder(tp)(raw, path)


def _decoder(tp: Any) -> Decoder:
    dec = _DECODERS.get(tp)
    if dec is None:
        dec = _build_decoder(tp)
        _DECODERS[tp] = dec
    return dec


_OBJECT_DECODERS: dict[type, Decoder] = {}


def _object_decoder(cls: type) -> Decoder:
    dec = _OBJECT_DECODERS.get(cls)
    if dec is None:
        plan = _plan(cls)
        by_key = {s.key: (s.attr, _decoder(s.tp)) for s in plan}
        required = [(s.attr, s.key) for s in plan if s.required]

        def dec(raw: Any, path: str) -> Any:
            if not isinstance(raw, dict):
                raise _wrong(path, "an object", raw)
            kwargs: dict[str, Any] = {}
            for key, value in raw.items():
                field = by_key.get(key)
                if field is None:
                    raise BadRequest(f"{_where(path)}unknown field {key!r}")
                if value is not None:  # null means absent, as in Go
                    kwargs[field[0]] = field[1](value, f"{path}.{key}" if path else key)
            for attr, key in required:
                if attr not in kwargs:
                    raise BadRequest(f"{_join(path, key)}: missing required field")
            return cls(**kwargs)

        _OBJECT_DECODERS[cls] = dec
    return dec


def _build_decoder(tp: Any) -> Decoder:
    inner = _optional_arg(tp)
    if inner is not None:
        inner_dec = _decoder(inner)
        return lambda raw, path: None if raw is None else inner_dec(raw, path)
    origin = typing.get_origin(tp)
    if origin is list:
        item_dec = _decoder(typing.get_args(tp)[0])

        def dec_list(raw: Any, path: str) -> Any:
            if raw is None:
                return []
            if not isinstance(raw, list):
                raise _wrong(path, "an array", raw)
            return [item_dec(v, f"{path}[{i}]") for i, v in enumerate(raw)]

        return dec_list
    if origin is dict:
        item_dec = _decoder(typing.get_args(tp)[1])

        def dec_dict(raw: Any, path: str) -> Any:
            if raw is None:
                return {}
            if not isinstance(raw, dict):
                raise _wrong(path, "an object", raw)
            return {k: item_dec(v, _join(path, k)) for k, v in raw.items()}

        return dec_dict
    if tp is typing.Any:
        return lambda raw, path: raw
    if not isinstance(tp, type):
        raise TypeError(f"unsupported type {tp}")
    if attrs.has(tp):
        hook = tp.__dict__.get("__json_decode__")
        if hook is not None:
            bound: Decoder = hook.__get__(None, tp)
            return bound
        return _object_decoder(tp)
    if issubclass(tp, enum.Enum):
        return _enum_decoder(tp)
    scalar = _SCALAR_DECODERS.get(tp)
    if scalar is None:
        raise TypeError(f"unsupported type {getattr(tp, '__name__', tp)}")
    return scalar


def _enum_decoder(tp: type[enum.Enum]) -> Decoder:
    by_value = {m.value: m for m in tp}
    allowed = ", ".join(repr(v) for v in by_value)

    def dec(raw: Any, path: str) -> Any:
        try:
            return by_value[raw]
        except (KeyError, TypeError):
            raise BadRequest(f"{_where(path)}invalid value {raw!r}, expected one of {allowed}") from None

    return dec


def _dec_bool(raw: Any, path: str) -> bool:
    if not isinstance(raw, bool):
        raise _wrong(path, "a boolean", raw)
    return raw


def _dec_int(raw: Any, path: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        raise _wrong(path, "an integer", raw)
    return raw


def _dec_float(raw: Any, path: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise _wrong(path, "a number", raw)
    return float(raw)


def _dec_str(raw: Any, path: str) -> str:
    if not isinstance(raw, str):
        raise _wrong(path, "a string", raw)
    return raw


def _dec_datetime(raw: Any, path: str) -> datetime:
    if not isinstance(raw, str):
        raise _wrong(path, "an RFC3339 timestamp string", raw)
    return parse_time(raw, path)


def _dec_timedelta(raw: Any, path: str) -> timedelta:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise _wrong(path, "a duration in integer nanoseconds", raw)
    if raw < 0:
        raise BadRequest(f"{_where(path)}duration must not be negative")
    return timedelta(microseconds=raw // 1000)


_SCALAR_DECODERS: dict[type, Decoder] = {
    bool: _dec_bool,
    int: _dec_int,
    float: _dec_float,
    str: _dec_str,
    datetime: _dec_datetime,
    timedelta: _dec_timedelta,
}
