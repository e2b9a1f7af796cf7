"""Physical dimensions and unit conversion (LANGUAGE.md §1).

A dimension is a vector of exponents over the SI base quantities the language needs
(kilogram, metre, second, ampere). Unit names are a prefix (`p n u m k M G`) on a base unit
(`s V A S F ohm Hz`); every value is converted to SI once, when a module is built.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from fractions import Fraction
from itertools import product
from typing import NamedTuple


class Dim(NamedTuple):
    kg: Fraction = Fraction(0)
    m: Fraction = Fraction(0)
    s: Fraction = Fraction(0)
    A: Fraction = Fraction(0)

    def __mul__(self, other: object) -> Dim:  # type: ignore[override]
        assert isinstance(other, Dim)
        return Dim(*(a + b for a, b in zip(self, other)))

    def __truediv__(self, other: Dim) -> Dim:
        return Dim(*(a - b for a, b in zip(self, other)))

    def __pow__(self, exponent: Fraction) -> Dim:
        return Dim(*(a * exponent for a in self))

    @property
    def dimensionless(self) -> bool:
        return all(a == 0 for a in self)

    def __str__(self) -> str:
        return dim_name(self)


def _dim(kg: int = 0, m: int = 0, s: int = 0, A: int = 0) -> Dim:
    return Dim(Fraction(kg), Fraction(m), Fraction(s), Fraction(A))


DIMENSIONLESS = _dim()
TIME = _dim(s=1)

BASE_UNITS: dict[str, tuple[Dim, str]] = {
    "s": (TIME, "second"),
    "V": (_dim(kg=1, m=2, s=-3, A=-1), "volt"),
    "A": (_dim(A=1), "ampere"),
    "S": (_dim(kg=-1, m=-2, s=3, A=2), "siemens"),
    "F": (_dim(kg=-1, m=-2, s=4, A=2), "farad"),
    "ohm": (_dim(kg=1, m=2, s=-3, A=-2), "ohm"),
    "Hz": (_dim(s=-1), "hertz"),
}
PREFIXES: dict[str, float] = {
    "p": 1e-12, "n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9,
}

UNITS: dict[str, tuple[float, Dim]] = {
    prefix + base: (factor, dim)
    for (prefix, factor), (base, (dim, _)) in product(PREFIXES.items(), BASE_UNITS.items())
}


def is_unit(name: str) -> bool:
    return name in UNITS


def unit_factor(name: str) -> float:
    return UNITS[name][0]


def unit_dim(name: str) -> Dim:
    return UNITS[name][1]


def _fmt_power(name: str, exponent: Fraction) -> str:
    return name if exponent == 1 else f"{name}^{exponent}"


_NAMED = [(dim, word) for dim, word in BASE_UNITS.values() if word != "hertz"]


def dim_name(dim: Dim) -> str:
    """A readable name: `volt`, `volt/second`, `ampere*ohm`, `1/second`, or base exponents."""
    if dim.dimensionless:
        return "dimensionless"
    for d, word in _NAMED:
        if dim == d:
            return word
    for d, word in _NAMED:
        if dim == DIMENSIONLESS / d:
            return f"1/{word}"
        if dim == d * d:
            return f"{word}^2"
    for (d1, w1), (d2, w2) in product(_NAMED, repeat=2):
        if dim == d1 / d2:
            return f"{w1}/{w2}"
        if dim == d1 * d2:
            return f"{w1}*{w2}"
    parts = [_fmt_power(n, e) for n, e in zip(("kg", "m", "s", "A"), dim) if e]
    return " ".join(parts)


_BY_WORD = {word: dim for dim, word in _NAMED} | {"hertz": BASE_UNITS["Hz"][0]}
_BASES = {"kg": _dim(kg=1), "m": _dim(m=1), "s": _dim(s=1), "A": _dim(A=1)}


def parse_dim_name(text: str) -> Dim:
    """The inverse of `dim_name`, for dimensions stored as text in the IR."""
    if text == "dimensionless":
        return DIMENSIONLESS
    if " " in text or text in _BASES or (text.split("^")[0] in _BASES):
        out = DIMENSIONLESS
        for part in text.split():
            base, _, exp = part.partition("^")
            out = out * _BASES[base] ** Fraction(exp or 1)
        return out
    if text.startswith("1/"):
        return DIMENSIONLESS / _BY_WORD[text[2:]]
    if text.endswith("^2"):
        return _BY_WORD[text[:-2]] ** Fraction(2)
    for sep in "/*":
        if sep in text:
            a, b = text.split(sep)
            return _BY_WORD[a] / _BY_WORD[b] if sep == "/" else _BY_WORD[a] * _BY_WORD[b]
    return _BY_WORD[text]


def to_si(value: float, unit: str | None) -> float:
    """`value` in `unit`, in SI, rounded once (`30 nS` is 3e-08, not 3.0000000000000004e-08)."""
    if unit is None:
        return value
    try:
        return float(Decimal(repr(value)) * Decimal(repr(UNITS[unit][0])))
    except InvalidOperation:
        return value * UNITS[unit][0]
