"""The value types of config keys and :func:`setting`, the one place a key's meaning and limits are written.

A key is ``name: Annotated[TYPE, setting(...)] = default`` in a section dataclass. ``TYPE`` is one of the
strict types below (YAML ``10.0`` is no integer, ``1`` no boolean); :func:`setting` holds the range
(``ge``/``gt``/``le``/``lt``), the meaning that docs/CONFIG.md shows, and the paper's value. Pydantic reads
all of it when a config is loaded; :func:`expected_text` and :func:`allowed_text` turn the same limits into
the words of an error message and of the docs' "allowed" column.
"""

from __future__ import annotations

import contextlib
import typing
from typing import Annotated, Any

import annotated_types
from pydantic import AfterValidator, BeforeValidator, Field, Strict
from pydantic.fields import FieldInfo


def to_number(value: Any) -> Any:
    """Integers and numeric text to float; everything else (booleans included) is left for the type check."""
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        # YAML 1.1 reads 1e-5 (no dot) as a string; accept any text that is a plain number
        with contextlib.suppress(ValueError):
            return float(value)
    return value


#: a YAML integer (``10.0`` and ``true`` are rejected)
Int = Annotated[int, Strict()]
#: a YAML boolean
Bool = Annotated[bool, Strict()]
#: a YAML string
Str = Annotated[str, Strict()]
#: a YAML number; integers and numeric text are converted to float
Number = Annotated[float, Strict(), BeforeValidator(to_number)]
#: a non-empty list of layer widths >= 1
Sizes = Annotated[list[Annotated[int, Strict(), Field(ge=1)]], Field(min_length=1)]


def _grow_at(value: float) -> float:
    if value != 0 and not value > 1:
        raise ValueError("0 or a KL ratio > 1")
    return value


def _ray_address(value: str) -> str:
    host, _, port = value.rpartition(":")
    if value not in ("", "auto") and not (host and port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError("empty, auto or host:port")
    return value


#: ``cpu``, ``cuda`` or ``cuda:N``
Device = Annotated[str, Strict(), Field(pattern=r"^(cpu|cuda(:\d+)?)$")]
#: 0 or a number > 1
GrowAt = Annotated[Number, AfterValidator(_grow_at)]
#: empty, ``auto`` or ``host:port`` (port 1-65535)
RayAddress = Annotated[str, Strict(), AfterValidator(_ray_address)]


#: how error messages name each value type
NOUNS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}


def setting(
    description: str,
    *,
    paper: str = "—",
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    expected: str | None = None,
    allowed: str | None = None,
) -> Any:
    """The pydantic field of one config key.

    Args:
        description: what the key means (Markdown; docs/CONFIG.md's "meaning" column).
        paper: the value of Finn et al. 2017 (or the source of the default); "—" when it gives none.
        ge: the value is >= this.
        gt: the value is > this.
        le: the value is <= this.
        lt: the value is < this.
        expected: what an error message says is allowed, where the range or choice list alone does not
            say it well (e.g. why the lower limit is 2); default: :func:`expected_text` of the limits.
        allowed: the docs' "allowed" column, likewise; default: :func:`allowed_text` of the limits.
    """
    extra: dict[str, Any] = {"paper": paper}
    if expected is not None:
        extra["expected"] = expected
    if allowed is not None:
        extra["allowed"] = allowed
    return Field(description=description, ge=ge, gt=gt, le=le, lt=lt, json_schema_extra=extra)


def field_info(hint: Any) -> FieldInfo:
    """Pydantic's merged view (type, limits, description) of one ``Annotated`` field hint."""
    return FieldInfo.from_annotation(hint)


def _extra(info: FieldInfo, key: str) -> str | None:
    extra = info.json_schema_extra
    value = extra.get(key) if isinstance(extra, dict) else None
    return value if isinstance(value, str) else None


def paper_value(info: FieldInfo) -> str:
    """The paper column of a field."""
    return _extra(info, "paper") or "—"


def choices(tp: Any) -> tuple[str, ...]:
    """The values of a ``Literal`` type, in order; ``()`` for any other type."""
    return typing.get_args(tp) if typing.get_origin(tp) is typing.Literal else ()


def _bounds(info: FieldInfo) -> dict[str, float]:
    names = {
        annotated_types.Ge: "ge",
        annotated_types.Gt: "gt",
        annotated_types.Le: "le",
        annotated_types.Lt: "lt",
    }
    out: dict[str, float] = {}
    for item in info.metadata:
        name = names.get(type(item))
        if name is not None:
            out[name] = getattr(item, name)
    return out


def _range(bounds: dict[str, float]) -> str:
    """``>= 1``, ``> 0``, ``[0, 1]``, ``(0, 1)`` or ``(0, 1]``; ``""`` without bounds."""
    low = ("[", bounds["ge"]) if "ge" in bounds else ("(", bounds["gt"]) if "gt" in bounds else None
    high = ("]", bounds["le"]) if "le" in bounds else (")", bounds["lt"]) if "lt" in bounds else None
    if low and high:
        return f"{low[0]}{low[1]:g}, {high[1]:g}{high[0]}"
    if low:
        return f"{'>=' if low[0] == '[' else '>'} {low[1]:g}"
    if high:
        return f"{'<=' if high[0] == ']' else '<'} {high[1]:g}"
    return ""


def type_name(tp: Any) -> str:
    """``int``, ``float``, ``bool``, ``str``, ``list[int]`` or ``list[str]`` (a ``Literal`` is ``str``)."""
    if choices(tp):
        return "str"
    if typing.get_origin(tp) is list:
        (item,) = typing.get_args(tp)
        return f"list[{type_name(typing.get_args(item)[0] if typing.get_origin(item) else item)}]"
    return getattr(tp, "__name__", str(tp))


def expected_text(info: FieldInfo) -> str:
    """What an error message says is allowed: ``an integer >= 1``, ``one of relu, tanh, elu``, ..."""
    explicit = _extra(info, "expected")
    if explicit is not None:
        return explicit
    values = choices(info.annotation)
    if values:
        return "one of " + ", ".join(map(str, values))
    words = NOUNS.get(type_name(info.annotation), type_name(info.annotation))
    limits = _range(_bounds(info))
    if not limits:
        return words
    return f"{words} in {limits}" if limits[0] in "[(" else f"{words} {limits}"


def allowed_text(info: FieldInfo) -> str:
    """The docs' "allowed" column: ``>= 1``, ``relu``, ``tanh``, ``elu``, ``true``, ``false``, ..."""
    explicit = _extra(info, "allowed")
    if explicit is not None:
        return explicit
    values = choices(info.annotation)
    if values:
        return ", ".join(f"`{v}`" if v else '`""`' for v in values)
    if info.annotation is bool:
        return "`true`, `false`"
    limits = _range(_bounds(info))
    return f"`{limits}`" if limits else ""
