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
"""Top-level tables of the config file (and `ports`, an array of `PortConfig`). A port's sub-tables
are sections too, named by their path without indices: ``ports.features``, ``ports.accounts`` (one
`ExtraAccount`)."""
MASK = "******"
"""What a write-only field shows when it is set (Secret's own repr); sending it back keeps the value."""


@dataclass(frozen=True)
class Field:
    name: str
    kind: str
    """text | secret | flag | integer | number | list | intlist | pins | optional_int"""
    default: Any
    doc: str
    choices: tuple[str, ...] = ()
    """The allowed values (of each item, for a list)."""
    choices_from: str = ""
    """For a list whose items name the keys of a top-level mapping (``restriction_classes``): the
    choices are whatever the running config defines."""


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


REFERENCES = {("ports.features", "restrict"): "restriction_classes"}
"""List fields whose items must name a key of a top-level mapping (the validator checks it)."""


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
    if annotation is float:
        return "number"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (types.UnionType, typing.Union) and int in args:
        return "optional_int"
    if origin is tuple:
        inner = args[0]
        if inner is str or typing.get_origin(inner) is typing.Literal:
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


def _item_class(annotation: Any) -> type:
    """The dataclass of a sub-table field, or of the items of an array-of-tables field."""
    item = annotation if dataclasses.is_dataclass(annotation) else typing.get_args(annotation)[0]
    return typing.cast(type, item)


def section_class(section: str) -> type:
    """The dataclass of a section: a top-level table, ``ports``, or a port's sub-table by its path."""
    head, *rest = section.split(".")
    cls = schema.PortConfig if head == "ports" else SECTIONS[head]
    for name in rest:
        cls = _item_class(typing.get_type_hints(cls)[name])
    return cls


@functools.cache
def subsections(section: str) -> tuple[tuple[str, bool], ...]:
    """The nested fields of a section as (name, is an array of tables), in schema order; each is the
    section ``f"{section}.{name}"``."""
    hints = typing.get_type_hints(section_class(section))
    return tuple((f.name, not dataclasses.is_dataclass(hints[f.name]))
                 for f in dataclasses.fields(section_class(section)) if _nested(hints[f.name]))


@functools.cache
def section_fields(section: str) -> tuple[Field, ...]:
    """The plain fields of a section ("ports" for one port, "ports.features"...), in schema order."""
    cls = section_class(section)
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
        literal = _literal_items(hints[f.name])
        out.append(Field(f.name, kind, default, docs.get((cls.__name__, f.name), ""),
                         choices.get((section, f.name), literal), REFERENCES.get((section, f.name), "")))
    return tuple(out)


def _literal_items(annotation: Any) -> tuple[str, ...]:
    """The values of a ``tuple[Literal[...], ...]`` field (e.g. feature names): its choices."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is tuple and args and typing.get_origin(args[0]) is typing.Literal:
        return tuple(str(v) for v in typing.get_args(args[0]))
    return ()


@functools.cache
def mapping_sections() -> dict[str, tuple[Field, ...]]:
    """The top-level tables that map names to strings (``[star_codes]``, ``[restriction_classes]``),
    found in `Config` as ``tuple[tuple[str, str], ...]`` fields. A mapping with defaults has exactly
    those keys (one text field each, the default as its value); one without is open: any name the
    validator accepts (its fields are then empty)."""
    hints = typing.get_type_hints(schema.Config)
    out: dict[str, tuple[Field, ...]] = {}
    for f in dataclasses.fields(schema.Config):
        if hints[f.name] == tuple[tuple[str, str], ...]:
            defaults = f.default if isinstance(f.default, tuple) else ()
            out[f.name] = tuple(Field(key, "text", value, "") for key, value in defaults)
    return out


def mapping_doc(name: str) -> str:
    """The attribute docstring of a mapping section in `Config`."""
    return _docstrings().get(("Config", name), "")


def public(section: str, values: dict[str, Any]) -> dict[str, Any]:
    """A section's TOML values as the API shows them: secrets masked (MASK when set, "" when not),
    in its sub-tables too."""
    if section in mapping_sections():
        return dict(values)
    out = dict(values)
    for f in section_fields(section):
        if f.kind == "secret":
            out[f.name] = MASK if out.get(f.name) else ""
    for name, array in subsections(section):
        inner = out.get(name)
        if array and isinstance(inner, list):
            out[name] = [public(f"{section}.{name}", v) if isinstance(v, dict) else v for v in inner]
        elif isinstance(inner, dict):
            out[name] = public(f"{section}.{name}", inner)
    return out


def merge(section: str, current: dict[str, Any], given: dict[str, Any], path: str = "") -> dict[str, Any]:
    """`current` with the `given` keys replaced; a secret given as MASK (or absent) keeps its value.
    A sub-table is merged the same way; an array of tables is replaced, each item keeping the secret
    of the current item with the same ``extension`` when it gives MASK (no such item: ConfigError
    against that field, since saving the mask itself as a password would be wrong). In a mapping
    section (``restriction_classes``) null removes a key, as in a JSON merge patch (RFC 7396).
    Unknown keys pass through so that `parse_config` names them as errors; `path` is the section's
    path in the document for error messages (``ports[0]``)."""
    out = dict(current)
    mapping = section in mapping_sections()
    for key, value in given.items():
        if mapping and value is None:
            out.pop(key, None)
            continue
        field = next((f for f in section_fields(section) if f.name == key), None) if not mapping else None
        if field is not None and field.kind == "secret" and value == MASK:
            continue
        array = dict(subsections(section)).get(key) if not mapping else None
        if array is False and isinstance(value, dict) and isinstance(out.get(key, {}), dict):
            value = merge(f"{section}.{key}", out.get(key, {}), value, f"{path}.{key}")
        elif array and isinstance(value, list):
            value = _merge_items(f"{section}.{key}", out.get(key, []), value, f"{path}.{key}")
        out[key] = value
    return out


def _merge_items(section: str, current: list[Any], given: list[Any], path: str) -> list[Any]:
    by_extension = {c.get("extension"): c for c in current if isinstance(c, dict)}
    out: list[Any] = []
    errors: list[schema.FieldError] = []
    for n, item in enumerate(given):
        if not isinstance(item, dict):
            out.append(item)  # parse_config says what is wrong with it
            continue
        old = by_extension.get(item.get("extension"), {})
        for f in section_fields(section):
            if f.kind == "secret" and item.get(f.name) == MASK and f.name not in old:
                errors.append(schema.FieldError(
                    f"{path}[{n}].{f.name}", f"{MASK} keeps the current value, but no current item has "
                                             f"extension {item.get('extension')!r}: send the value itself"))
        out.append(merge(section, old, item, f"{path}[{n}]") if old else dict(item))
    if errors:
        raise schema.ConfigError(errors)
    return out
