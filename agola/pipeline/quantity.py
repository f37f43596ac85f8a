"""Kubernetes resource quantities for tmpfs sizes ("512Mi", "1Gi", "100M", "1e9"), in bytes."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_SUFFIXES: dict[str, int | Decimal] = {
    "": 1,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)$")
_MAX = 2**63 - 1


class QuantityError(ValueError):
    pass


def parse_quantity(text: str) -> int:
    """Bytes (rounded up, as ``Quantity.Value()``) of a quantity; negative sizes are refused."""
    m = _QUANTITY.match(text.strip())
    if m is None:
        raise QuantityError("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    number, exponent, suffix = m.group(1), m.group(2), m.group(3) or ""
    try:
        value = Decimal(number + (exponent or "")) * Decimal(_SUFFIXES[suffix])
    except InvalidOperation as exc:  # pragma: no cover - the regexp already checked the shape
        raise QuantityError(str(exc)) from None
    if value < 0:
        raise QuantityError("size must not be negative")
    size = math.ceil(value)
    if size > _MAX:
        raise QuantityError("size too large")
    return size
