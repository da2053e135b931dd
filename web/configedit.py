"""Changing the configuration from the web: one path for pages and API.

Every change starts from the running config's document (`to_dict`), replaces one section, one port
or the whole file, and goes through `parse_config` (all problems at once, each against its field),
then `ConfigStore.save` (atomic, 0600, previous file kept as .bak) and `Gateway.apply_config` (live,
only what changed). Changes are serialized by a lock, so two browser tabs cannot interleave.
"""

from __future__ import annotations

import asyncio
import copy
import csv
import io
import re
from collections.abc import Iterable
from typing import Any

from firmware.app import Applied, Gateway
from firmware.config import Config, ConfigError, ConfigStore, FieldError, parse_config
from firmware.config.store import to_dict
from web.fields import Field, mapping_sections, section_fields, subsections

_INT = re.compile(r"-?[0-9]+")
_NUMBER = re.compile(r"[-+]?[0-9]+(\.[0-9]+)?")
PORT_IDENTITY = ("extension", "auth_user", "password", "display_name", "accounts")
"""What 'copy settings to other ports' leaves alone: each port's own identity at the PBX (its extra
accounts are identities too)."""


class ConfigEditor:
    def __init__(self, gateway: Gateway, store: ConfigStore) -> None:
        self.gateway, self.store = gateway, store
        self._lock = asyncio.Lock()

    def document(self) -> dict[str, Any]:
        """The running config as the TOML document (secrets in clear: never send this as is)."""
        return to_dict(self.gateway.config)

    async def commit(self, doc: dict[str, Any]) -> tuple[Config, Applied]:
        """Validate, save and apply `doc`; raises ConfigError listing every problem."""
        async with self._lock:
            config = parse_config(doc)
            if len(config.ports) > self.gateway.board.ports:
                raise ConfigError([FieldError("ports", f"this board has {self.gateway.board.ports} ports")])
            await asyncio.to_thread(self.store.save, config)
            return config, await self.gateway.apply_config(config)


def from_form(section: str, form: dict[str, str], current: dict[str, Any]) -> dict[str, Any]:
    """A section's TOML values from an HTML form's strings. Values that do not parse (an integer
    field holding 'abc') are passed on as strings, so the schema reports them on their field. An
    empty secret keeps the current one (write-only field). A sub-table's fields are named
    ``<sub>.<field>`` (``features.dnd``) and read only when the form carries any of them, so a form
    without the sub-table leaves it as it is; arrays of tables have their own forms."""
    out = _plain_from_form(section_fields(section), form, current)
    for name, array in subsections(section):
        prefix = f"{name}."
        sub = {k[len(prefix):]: v for k, v in form.items() if k.startswith(prefix)}
        if not array and sub:
            inner = current.get(name, {})
            out[name] = from_form(f"{section}.{name}", sub, inner if isinstance(inner, dict) else {})
    return out


def _plain_from_form(fields: tuple[Field, ...], form: dict[str, str],
                     current: dict[str, Any]) -> dict[str, Any]:
    out = dict(current)
    for f in fields:
        if f.kind == "pins":
            continue
        raw = form.get(f.name)
        if f.kind == "flag":
            out[f.name] = raw is not None and raw not in ("", "0", "false", "off")
            continue
        if raw is None:
            continue
        raw = raw.strip()
        if f.kind == "secret":
            if raw:
                out[f.name] = raw
        elif f.kind == "integer":
            out[f.name] = int(raw) if _INT.fullmatch(raw) else raw
        elif f.kind == "number":
            out[f.name] = float(raw) if _NUMBER.fullmatch(raw) else raw
        elif f.kind == "optional_int":
            if raw:
                out[f.name] = int(raw) if _INT.fullmatch(raw) else raw
            else:
                out.pop(f.name, None)
        elif f.kind == "list":
            out[f.name] = [v for v in re.split(r"[,\s]+", raw) if v]
        elif f.kind == "intlist":
            out[f.name] = [int(v) if _INT.fullmatch(v) else v for v in re.split(r"[,\s]+", raw) if v]
        else:
            out[f.name] = raw
    return out


def form_value(kind: str, value: Any) -> str:
    """How a TOML value shows in a form field."""
    if value is None:
        return ""
    if kind in ("list", "intlist"):
        return ", ".join(str(v) for v in value)
    return str(value)


def flat_fields(section: str) -> tuple[tuple[str, Field], ...]:
    """A section's plain fields and its sub-tables' (not arrays of tables) as (column, field), the
    column of a sub-table's field being ``<sub>.<field>``: how CSV and forms name them."""
    out = [(f.name, f) for f in section_fields(section) if f.kind != "pins"]
    for name, array in subsections(section):
        if not array:
            out += [(f"{name}.{column}", f) for column, f in flat_fields(f"{section}.{name}")]
    return tuple(out)


CSV_COLUMNS = ("port", *(column for column, _ in flat_fields("ports")))


def ports_csv(doc: dict[str, Any]) -> str:
    """The ports as CSV (port numbers from 1); passwords are never exported (the column is empty);
    a sub-table's fields are ``features.<name>`` columns; extra accounts are not in the CSV (an
    import keeps them)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for n, port in enumerate(doc["ports"], 1):
        row: dict[str, Any] = {"port": n}
        for column, f in flat_fields("ports"):
            value: Any = port
            for key in column.split("."):
                value = value.get(key, f.default) if isinstance(value, dict) else f.default
            row[column] = "" if f.kind == "secret" else str(value).lower() if isinstance(value, bool) \
                else form_value("list", value) if isinstance(value, list | tuple) else value
        writer.writerow(row)
    return out.getvalue()


def import_ports_csv(doc: dict[str, Any], text: str) -> dict[str, Any]:
    """`doc` with the ports of a CSV (as `ports_csv` writes; an empty password keeps the port's).
    Rows name their port (1-based); a port past the configured ones is added. Raises ConfigError
    for a file that is not such a CSV; field problems are left to `parse_config`."""
    try:
        rows = list(csv.DictReader(io.StringIO(text)))
    except csv.Error as exc:
        raise ConfigError([FieldError("csv", f"not a CSV file: {exc}")]) from exc
    if not rows:
        raise ConfigError([FieldError("csv", "no rows (the first line must name the columns)")])
    unknown = [c for c in rows[0] if c not in CSV_COLUMNS]
    if unknown or "port" not in rows[0]:
        raise ConfigError([FieldError("csv", f"columns must be among {', '.join(CSV_COLUMNS)} including "
                                             f"'port'; unknown: {', '.join(map(str, unknown)) or 'none'}")])
    ports = [dict(p) for p in doc["ports"]]
    for line, row in enumerate(rows, 2):
        number = (row.get("port") or "").strip()
        if not number.isdigit() or not 1 <= int(number) <= len(ports) + 1:
            raise ConfigError([FieldError(f"csv line {line}", f"port must be 1..{len(ports) + 1}, got "
                                                              f"{number!r}")])
        index = int(number) - 1
        current = ports[index] if index < len(ports) else {}
        form = {k: v for k, v in row.items() if k != "port" and v is not None}
        for column, f in flat_fields("ports"):
            if f.kind != "flag":
                continue
            if column in form:
                form[column] = "" if form[column].strip().lower() in ("", "false", "0", "no") else "on"
            else:  # a CSV without the column keeps the port's value
                value: Any = current
                for key in column.split("."):
                    value = value.get(key, f.default) if isinstance(value, dict) else f.default
                form[column] = "on" if value else ""
        updated = from_form("ports", form, current)
        if index < len(ports):
            ports[index] = updated
        else:
            ports.append(updated)
    return {**doc, "ports": ports}


def copy_port(doc: dict[str, Any], source: int, targets: list[int]) -> dict[str, Any]:
    """`doc` with port `source`'s settings (all but its identity) copied to `targets` (0-based)."""
    ports = [dict(p) for p in doc["ports"]]
    settings = {k: copy.deepcopy(v) for k, v in ports[source].items() if k not in PORT_IDENTITY}
    for target in targets:
        if target != source and 0 <= target < len(ports):
            ports[target] = {**{k: v for k, v in ports[target].items() if k in PORT_IDENTITY}, **settings}
    return {**doc, "ports": ports}


def errors_by_field(errors: list[FieldError], prefix: str,
                    shown: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """Errors on `prefix.<field>` keyed by the field's name as the form shows it (``extension``,
    ``features.restrict`` for ``features.restrict[0]``) when the form `shown` it; all the others as
    lines for the top of the page, so no error is ever dropped."""
    visible = set(shown)
    mine: dict[str, str] = {}
    other: list[str] = []
    for error in errors:
        rest = error.path if not prefix else error.path[len(prefix) + 1:] \
            if error.path.startswith(f"{prefix}.") else ""
        field = re.sub(r"\[[0-9]+\]$", "", rest)
        if field in visible:
            mine[field] = f"{mine[field]}; {error.message}" if field in mine else error.message
        else:
            other.append(str(error))
    return mine, other


def mapping_from_form(section: str, form: dict[str, str], current: dict[str, Any]) -> dict[str, Any]:
    """A mapping section with fixed keys (``[star_codes]``) from form fields ``<section>.<key>``."""
    prefix = f"{section}."
    sub = {k[len(prefix):]: v for k, v in form.items() if k.startswith(prefix)}
    return _plain_from_form(mapping_sections()[section], sub, current)


def class_rows(form: dict[str, str]) -> list[tuple[str, str]]:
    """The rows of the Star codes page's class table (``class-name-N``, ``class-plan-N``) as typed,
    minus those with ``class-remove-N`` ticked or both cells empty."""
    numbers = sorted({int(k.rsplit("-", 1)[1]) for k in form if re.fullmatch(r"class-(name|plan)-[0-9]+", k)})
    rows = [(form.get(f"class-name-{n}", "").strip(), form.get(f"class-plan-{n}", "").strip())
            for n in numbers if not form.get(f"class-remove-{n}")]
    return [row for row in rows if any(row)]


def classes_from_form(form: dict[str, str]) -> dict[str, str]:
    """``[restriction_classes]`` from the class rows (`class_rows`). The same name twice is an
    error against that class (a table cannot hold it twice)."""
    out: dict[str, str] = {}
    for name, plan in class_rows(form):
        if name in out:
            raise ConfigError([FieldError(f"restriction_classes.{name}", "is defined twice")])
        out[name] = plan
    return out
