"""The config schema's fields as the web sees them, derived from the dataclasses themselves.

Forms, the JSON API and the OpenAPI document all come from `firmware.config.schema`'s dataclasses:
the field names, types and defaults from `dataclasses.fields`, the help text from each field's
attribute docstring (read from the module source with `ast`), the choices from the schema's own
constants. A field added to the schema appears everywhere without a line of web code; validation
stays in one place (`parse_config`), so the web never accepts what the config file would refuse.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
import types
import typing
from dataclasses import dataclass
from typing import Any

from dsp.tones import countries
from firmware.config import schema
from firmware.config.schema import Secret
from hal.backends import BACKENDS

SECTIONS: dict[str, type] = {
    "system": schema.SystemConfig, "sip": schema.SipConfig, "regional": schema.RegionalConfig,
    "hardware": schema.HardwareConfig, "web": schema.WebConfig,
}
"""Top-level tables of the config file (and `ports`, an array of `PortConfig`)."""
MASK = "******"
"""What a write-only field shows when it is set (Secret's own repr); sending it back keeps the value."""


@dataclass(frozen=True)
class Field:
    name: str
    kind: str
    """text | secret | flag | integer | list | intlist | pins | optional_int"""
    default: Any
    doc: str
    choices: tuple[str, ...] = ()


def _choices() -> dict[tuple[str, str], tuple[str, ...]]:
    return {
        ("system", "log_level"): schema.LOG_LEVELS,
        ("sip", "transport"): schema.TRANSPORTS,
        ("sip", "unknown_source"): schema.UNKNOWN_SOURCE_ACTIONS,
        ("regional", "callerid"): schema.CALLERID_STANDARDS,
        ("regional", "country"): tuple(countries()),
        ("ports", "callerid"): ("", *schema.CALLERID_STANDARDS),
        ("hardware", "backend"): tuple(BACKENDS),
        ("web", "https"): schema.HTTPS_MODES,
    }


@functools.cache
def _docstrings() -> dict[tuple[str, str], str]:
    """(class name, field) -> the string literal right after the field in the class body."""
    tree = ast.parse(inspect.getsource(schema))
    out: dict[tuple[str, str], str] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        body = node.body
        for stmt, after in itertools.pairwise(body):
            if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                out[(node.name, stmt.target.id)] = " ".join(after.value.value.replace("`", "").split())
    return out


def _kind(annotation: Any) -> str:
    if annotation is Secret:
        return "secret"
    if annotation is bool:
        return "flag"
    if annotation is int:
        return "integer"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (types.UnionType, typing.Union) and int in args:
        return "optional_int"
    if origin is tuple:
        inner = args[0]
        if inner is str:
            return "list"
        if inner is int:
            return "intlist"
        return "pins"
    return "text"


def _nested(annotation: Any) -> bool:
    """A sub-table (a dataclass) or an array of them: edited by its own form, not as one field."""
    args = typing.get_args(annotation)
    return dataclasses.is_dataclass(annotation) or (
        typing.get_origin(annotation) is tuple and bool(args) and dataclasses.is_dataclass(args[0]))


@functools.cache
def section_fields(section: str) -> tuple[Field, ...]:
    """The plain fields of a section ("ports" for one port), in schema order."""
    cls = schema.PortConfig if section == "ports" else SECTIONS[section]
    hints = typing.get_type_hints(cls)
    docs, choices = _docstrings(), _choices()
    out = []
    for f in dataclasses.fields(cls):
        if _nested(hints[f.name]):
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        kind = _kind(hints[f.name])
        if kind == "secret":
            default = ""
        out.append(Field(f.name, kind, default, docs.get((cls.__name__, f.name), ""),
                         choices.get((section, f.name), ())))
    return tuple(out)


def public(section: str, values: dict[str, Any]) -> dict[str, Any]:
    """A section's TOML values as the API shows them: secrets masked (MASK when set, "" when not)."""
    out = dict(values)
    for f in section_fields(section):
        if f.kind == "secret":
            out[f.name] = MASK if out.get(f.name) else ""
    return out


def merge(section: str, current: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """`current` with the `given` keys replaced; a secret given as MASK (or absent) keeps its value.
    Unknown keys pass through so that `parse_config` names them as errors."""
    out = dict(current)
    for key, value in given.items():
        field = next((f for f in section_fields(section) if f.name == key), None)
        if field is not None and field.kind == "secret" and value == MASK:
            continue
        out[key] = value
    return out
