"""Kubernetes resource quantities ("0.5", "500m", "256Mi", "1G", "1e9"), as OSCAR services use.

Decimal arithmetic keeps "0.1" exactly 0.1 and "1Ei" exact; results are converted at the edge.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_QUANTITY = re.compile(
    r"^(?P<number>[+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?\Z"
)

_MULTIPLIERS: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}

MAX_QUANTITY_LENGTH = 64
#: Decimal exponents beyond these are refused before any arithmetic: turning "1e999999" into
#: an int takes half a minute of CPU, and "1e1000000" overflows. 1e±30 spans every real size.
MAX_EXPONENT = 30
MIN_EXPONENT = -30

#: Docker refuses a memory limit below 6 MiB; a smaller value is almost always a typo.
MINIMUM_MEMORY_BYTES = 6 * 2**20


class QuantityError(ValueError):
    pass


def parse_quantity(text: str) -> Decimal:
    """The value of a quantity, e.g. "500m" → 0.5 and "1Ki" → 1024."""
    if len(text) > MAX_QUANTITY_LENGTH:
        raise QuantityError(
            f"{text[:20]!r}… is {len(text)} characters long; a quantity has at most "
            f"{MAX_QUANTITY_LENGTH}"
        )
    match = _QUANTITY.match(text.strip())
    if match is None:
        raise QuantityError(
            f"{text!r} is not a quantity; use a number with an optional suffix "
            "(m for thousandths, k/M/G or Ki/Mi/Gi)"
        )
    try:
        number = Decimal(match["number"])
    except InvalidOperation as error:  # pragma: no cover - the pattern only admits numbers
        raise QuantityError(f"{text!r} is not a number") from error
    if number and not MIN_EXPONENT <= number.adjusted() <= MAX_EXPONENT:
        raise QuantityError(
            f"{text!r} is out of range; a quantity lies between 1e{MIN_EXPONENT} and "
            f"1e{MAX_EXPONENT}"
        )
    return number * _MULTIPLIERS[match["suffix"] or ""]


def cpu_cores(text: str) -> float:
    """CPU cores of a quantity; must be more than zero."""
    value = parse_quantity(text)
    if value <= 0:
        raise QuantityError(f"cpu {text!r} must be more than 0 cores")
    return float(value)


def memory_bytes(text: str) -> int:
    """Bytes of a memory quantity, rounded up; refuses sizes no container can run with."""
    value = parse_quantity(text)
    size = math.ceil(value)
    if size < MINIMUM_MEMORY_BYTES:
        hint = ""
        if text.strip().endswith("m"):
            hint = " (a lowercase m means thousandths; did you mean Mi?)"
        raise QuantityError(f"memory {text!r} is {value} bytes, below the 6Mi minimum{hint}")
    return size
