"""The config file on disk: TOML in, TOML out, never half-written.

The gateway may lose power at any moment (it is a Pi under a desk), so `save` writes a temporary file
beside the target, fsyncs it and renames it over the old one: a reader sees the old file or the new
one, never a mix. The previous file is kept as ``<name>.bak`` so a bad edit from the web UI can be
undone by hand. The file holds SIP passwords, so it is created 0600.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any

from firmware.config.schema import (
    SCHEMA_VERSION,
    Config,
    ExtraAccount,
    HardwareConfig,
    PortConfig,
    PortFeatures,
    RegionalConfig,
    Secret,
    SipConfig,
    SystemConfig,
    WebConfig,
    load_config,
)

SECTIONS = ("system", "hardware", "regional", "sip", "web")


def _plain(value: object) -> object:
    if isinstance(value, Secret):
        return value.reveal()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


Section = (SystemConfig | HardwareConfig | RegionalConfig | SipConfig | WebConfig | PortConfig | PortFeatures
           | ExtraAccount)


def _section(obj: Section) -> dict[str, Any]:
    """The fields of one section, minus the ones TOML cannot say (None means absent); a port's
    features become its ``[ports.features]`` sub-table, its accounts ``[[ports.accounts]]``."""
    out: dict[str, Any] = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, PortFeatures):
            out[f.name] = _section(value)
        elif f.name == "accounts" and isinstance(obj, PortConfig):
            out[f.name] = [_section(a) for a in value]
        else:
            out[f.name] = _plain(value)
    return {k: v for k, v in out.items() if v is not None}


def to_dict(config: Config) -> dict[str, Any]:
    """The document `save` writes (passwords in clear text: this is the file, not a log)."""
    doc: dict[str, Any] = {"version": SCHEMA_VERSION}
    for name in SECTIONS:
        doc[name] = _section(getattr(config, name))
    doc["star_codes"] = dict(config.star_codes)
    if config.restriction_classes:
        doc["restriction_classes"] = dict(config.restriction_classes)
    doc["ports"] = [_section(p) for p in config.ports]
    return doc


def _value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        # JSON string escapes are valid TOML basic-string escapes; TOML also forbids a raw DEL.
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dumps(doc: dict[str, Any]) -> str:
    """TOML for our document shape: top-level scalars, tables of scalars, arrays of such tables whose
    tables may hold one level of sub-tables (``[ports.features]``)."""
    head = [f"{k} = {_value(v)}" for k, v in doc.items() if not isinstance(v, dict | list)]
    body: list[str] = []
    for key, value in doc.items():
        tables = [value] if isinstance(value, dict) else value if isinstance(value, list) else []
        for table in tables:
            body += ["", f"[{key}]" if isinstance(value, dict) else f"[[{key}]]"]
            nested = {k: v for k, v in table.items()
                      if isinstance(v, dict) or (isinstance(v, list) and v and isinstance(v[0], dict))}
            body += [f"{k} = {_value(v)}" for k, v in table.items() if k not in nested]
            for sub, inner in nested.items():
                for subtable in [inner] if isinstance(inner, dict) else inner:
                    header = f"[{key}.{sub}]" if isinstance(inner, dict) else f"[[{key}.{sub}]]"
                    body += ["", header] + [f"{k} = {_value(v)}" for k, v in subtable.items()]
    return "\n".join(head + body) + "\n"


class ConfigStore:
    """One config file. `load` raises ConfigError (all problems at once); `save` is atomic."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @property
    def backup_path(self) -> Path:
        return self.path.with_name(self.path.name + ".bak")

    def load(self) -> Config:
        return load_config(self.path)

    def save(self, config: Config) -> None:
        text = dumps(to_dict(config))
        load_config(text)  # refuse to write a file we could not read back
        fd, tmp_name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:  # mkstemp creates it 0600
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            if self.path.exists():
                shutil.copy2(self.path, self.backup_path)  # a copy, not a link: /boot is FAT on a Pi
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)
