"""JSON (de)serialization of wire types, driven by attrs field metadata and type hints.

This is the one codec for everything that crosses the wire between roles (runservice and
configstore types alike). A wire type is an attrs class inheriting ``JSONType`` whose fields are
declared with ``jfield``: the JSON key, and whether the field is omitted when empty (Go's
``omitempty``); ``jembedded`` declares a Go embedded struct, whose keys are written inline.
Everything else comes from the type annotation: ``str``/``int``/``bool``/``float``, ``datetime``
(RFC3339, UTC), ``GoTime`` (a Go ``time.Time``: ``None`` is the zero time
``0001-01-01T00:00:00Z``, never omitted), ``timedelta`` (integer nanoseconds, like Go's
``time.Duration``; a Go duration string such as ``"15s"`` is accepted too), string enums,
``list[T]``, ``dict[str, T]``, ``T | None``, ``Any`` (any JSON value) and nested wire types.
A field whose values are an enum but must not be rejected while decoding (so that an operation
can answer its own precise 400) is simply annotated ``str``.

Parsing is strict, because these payloads come from other roles and from users: a missing required
field (an attrs field without default) or a value of the wrong type raises ``BadRequest`` naming
the field by its JSON path (``run_config_tasks.t1.runtime.containers[0]``). An unknown key is
rejected too, unless the class sets ``json_unknown_keys = "ignore"`` (stored data that newer
writers may extend, as the configstore's). ``null`` means "absent", as in Go.

A class may take over its own decoding with a ``__json_decode__(raw, path)`` classmethod (used for
polymorphic values such as steps); encoding always follows the value's concrete class.
"""

from __future__ import annotations

import enum
import json
import types
import typing
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import attrs

from agola.errors import BadRequest
from agola.util.duration import DurationError, parse_duration, to_nanoseconds, to_timedelta

_JSON_KEY = "agola_json"
_OMITEMPTY_KEY = "agola_omitempty"
_EMBEDDED_KEY = "agola_embedded"

T = TypeVar("T", bound="JSONType")


def jfield(
    name: str,
    *,
    omitempty: bool | str = True,
    default: Any = attrs.NOTHING,
    factory: Callable[[], Any] | None = None,
    converter: Any = None,
    repr: bool = True,  # attrs' own name for it
) -> Any:
    """An attrs field serialized under JSON key ``name``.

    Without ``default``/``factory`` the field is required when parsing.
    ``omitempty=False`` always writes the key (``null`` for ``None``), as the Go types do for the
    fields the spec marks "NOT omitempty". ``omitempty="nil"`` omits only ``None`` (Go's
    ``*int`` with omitempty: a pointer to 0 is still written). ``repr=False`` keeps a value
    (a secret) out of the object's ``repr``, hence out of logs and test output.
    """
    metadata = {_JSON_KEY: name, _OMITEMPTY_KEY: omitempty}
    if factory is not None:
        return attrs.field(factory=factory, metadata=metadata, converter=converter, repr=repr)
    return attrs.field(default=default, metadata=metadata, converter=converter, repr=repr)


def jembedded() -> Any:
    """An attrs field holding a wire type whose keys are written inline in this object.

    Go's embedded struct (``struct { *types.Project; OwnerType string }``): on the wire the
    object's own keys and the embedded value's keys share one JSON object. Always required when
    constructing, always decoded (from the keys present) when parsing.
    """
    return attrs.field(metadata={_EMBEDDED_KEY: True})


class JSONType:
    """Mixin giving an attrs wire type ``to_json()`` and ``from_json()``."""

    __slots__ = ()

    #: What parsing does with a key no field reads: ``"reject"`` it (a ``BadRequest``) or
    #: ``"ignore"`` it (forward compatibility of stored data written by a newer version).
    json_unknown_keys: ClassVar[Literal["reject", "ignore"]] = "reject"

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
        return decode_value(data, cls, path)  # type: ignore[no-any-return]  # the decoder built for cls returns a cls


# -- time ------------------------------------------------------------------------------------

#: What Go writes for an unset (zero) ``time.Time``.
ZERO_TIME = "0001-01-01T00:00:00Z"
_ZERO_DATETIME = datetime(1, 1, 1, tzinfo=UTC)


class _GoZeroTime:
    """``Annotated`` marker of ``GoTime``."""

    def __repr__(self) -> str:
        return "GoZeroTime"


#: A Go ``time.Time`` field: ``None`` is written as Go's zero time and read back from it (or from
#: ``""``); never omitted, because ``omitempty`` never drops a Go struct.
GoTime = Annotated[datetime | None, _GoZeroTime()]


def format_time(value: datetime) -> str:
    """RFC3339 in UTC with a ``Z`` suffix; fractional seconds only when present."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    elif value.utcoffset():
        value = value.astimezone(UTC)
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
        if value.tzinfo is not None:
            return value.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: before year 1 once in UTC
        raise BadRequest(f"{_where(path)}invalid RFC3339 timestamp {raw!r}") from None
    raise BadRequest(f"{_where(path)}timestamp {raw!r} has no timezone")


def _format_go_time(value: datetime | None) -> str:
    return ZERO_TIME if value is None else format_time(value)


def _parse_go_time(raw: Any, path: str) -> datetime | None:
    if not isinstance(raw, str):
        raise _wrong(path, "an RFC3339 timestamp string", raw)
    if raw in ("", ZERO_TIME):
        return None
    value = parse_time(raw, path)
    return None if value == _ZERO_DATETIME else value


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
    key: str | None  # None: an embedded wire type, its keys inline
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
        hints = typing.get_type_hints(cls, include_extras=True)
        plan = []
        for f in attrs.fields(cls):
            tp = hints[f.name]
            if f.metadata.get(_EMBEDDED_KEY):
                plan.append(_FieldSpec(f.name, None, omitempty=False, tp=tp, required=False))
                continue
            key = f.metadata.get(_JSON_KEY)
            if key is None:
                continue  # not on the wire
            plan.append(
                _FieldSpec(
                    attr=f.name,
                    key=key,
                    omitempty=False if tp == GoTime else f.metadata.get(_OMITEMPTY_KEY, True),
                    tp=tp,
                    required=f.default is attrs.NOTHING,
                )
            )
        _PLANS[cls] = plan
        _check_unique_keys(cls)
    return plan


def json_keys(cls: type) -> frozenset[str]:
    """The JSON keys a wire type reads and writes (those of its embedded types included)."""
    return frozenset(_all_keys(cls))


def _all_keys(cls: type) -> list[str]:
    keys: list[str] = []
    for spec in _plan(cls):
        keys.extend(_all_keys(spec.tp) if spec.key is None else [spec.key])
    return keys


def _check_unique_keys(cls: type) -> None:
    keys = _all_keys(cls)
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise TypeError(f"{cls.__name__}: JSON keys {twice} are declared twice (embedded types)")


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
    return to_nanoseconds(value)


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
    if tp == GoTime:
        return _format_go_time
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
                if key is None:  # embedded: its keys inline
                    out.update(field_enc(value))
                    continue
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
        by_key = {s.key: (s.attr, _decoder(s.tp)) for s in plan if s.key is not None}
        required = [(s.attr, s.key) for s in plan if s.required and s.key is not None]
        embedded = [(s.attr, json_keys(s.tp), _object_decoder(s.tp)) for s in plan if s.key is None]
        known = json_keys(cls)
        reject_unknown = getattr(cls, "json_unknown_keys", "reject") == "reject"

        def dec(raw: Any, path: str) -> Any:
            if not isinstance(raw, dict):
                raise _wrong(path, "an object", raw)
            kwargs: dict[str, Any] = {}
            for key, value in raw.items():
                field = by_key.get(key)
                if field is None:
                    if reject_unknown and key not in known:
                        raise BadRequest(f"{_where(path)}unknown field {key!r}")
                    continue
                if value is not None:  # null means absent, as in Go
                    kwargs[field[0]] = field[1](value, f"{path}.{key}" if path else key)
            for attr, key in required:
                if attr not in kwargs:
                    raise BadRequest(f"{_join(path, key)}: missing required field")
            for attr, keys, embedded_dec in embedded:
                kwargs[attr] = embedded_dec({k: v for k, v in raw.items() if k in keys}, path)
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
    if tp == GoTime:
        return _parse_go_time
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
    if isinstance(raw, str):  # hand-written payloads; Go itself writes integer nanoseconds
        try:
            nanoseconds = parse_duration(raw)
        except DurationError as exc:
            raise BadRequest(f"{_where(path)}{exc}: {raw!r}") from None
    elif isinstance(raw, bool) or not isinstance(raw, int):
        raise _wrong(path, "a duration in integer nanoseconds", raw)
    else:
        nanoseconds = raw
    if nanoseconds < 0:
        raise BadRequest(f"{_where(path)}duration must not be negative")
    return to_timedelta(nanoseconds)


_SCALAR_DECODERS: dict[type, Decoder] = {
    bool: _dec_bool,
    int: _dec_int,
    float: _dec_float,
    str: _dec_str,
    datetime: _dec_datetime,
    timedelta: _dec_timedelta,
}
