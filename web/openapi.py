"""The OpenAPI 3.1 document of /api/v1, generated from the config schema's dataclasses (web.fields),
so the documented fields are exactly the ones the validator accepts."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from web.fields import (
    MASK,
    SECTIONS,
    Field,
    mapping_doc,
    mapping_sections,
    section_class,
    section_fields,
    subsections,
)
from web.sysinfo import version

_TYPES: dict[str, dict[str, Any]] = {
          "text": {"type": "string"}, "flag": {"type": "boolean"}, "integer": {"type": "integer"},
          "number": {"type": "number"},
          "optional_int": {"type": "integer"}, "list": {"type": "array", "items": {"type": "string"}},
          "intlist": {"type": "array", "items": {"type": "integer"}},
          "pins": {"type": "array", "items": {"type": "array", "items": {"type": "integer"},
                                              "minItems": 3, "maxItems": 3}}}


def _property(f: Field) -> dict[str, Any]:
    if f.kind == "secret":
        return {"type": "string", "writeOnly": True,
                "description": f"Write-only: reads show {MASK!r} when set, '' when not; sending {MASK!r} "
                               "keeps the current value."}
    prop: dict[str, Any] = dict(_TYPES[f.kind])
    if f.doc:
        prop["description"] = f.doc
    if f.choices and f.kind == "list":
        prop["items"] = {"type": "string", "enum": list(f.choices)}
    elif f.choices:
        prop["enum"] = list(f.choices)
    if f.choices_from:
        prop["description"] = f"{f.doc} Each item must be a key of [{f.choices_from}].".strip()
    if f.default is not None:
        prop["default"] = list(f.default) if isinstance(f.default, tuple) else f.default
    return prop


def _schema(section: str) -> dict[str, Any]:
    """A section's object schema; its sub-tables refer to their own schemas (`_schemas`), in the
    dataclass's field order."""
    fields = {f.name: _property(f) for f in section_fields(section)}
    for name, array in subsections(section):
        ref = _ref(section_class(f"{section}.{name}").__name__)
        fields[name] = {"type": "array", "items": ref} if array else ref
    order = [f.name for f in dataclasses.fields(section_class(section)) if f.name in fields]
    out: dict[str, Any] = {"type": "object", "additionalProperties": False,
                           "properties": {name: fields[name] for name in order}}
    required = [f.name for f in section_fields(section) if f.default is None and f.kind != "optional_int"]
    if required:
        out["required"] = required
    return out


def _schemas(section: str, out: dict[str, Any]) -> None:
    """`section`'s schema and its sub-tables', named by their dataclasses (PortFeatures...)."""
    out[section_class(section).__name__] = _schema(section)
    for name, _array in subsections(section):
        _schemas(f"{section}.{name}", out)


def _mapping_schema(name: str) -> dict[str, Any]:
    """A mapping section: fixed keys (star codes, with their defaults) or any name (classes)."""
    fields = mapping_sections()[name]
    doc = mapping_doc(name)
    if fields:
        return {"type": "object", "additionalProperties": False, "description": doc,
                "properties": {f.name: {"type": "string", "default": f.default} for f in fields}}
    return {"type": "object", "description": f"{doc} PUT with a null value removes that key.",
            "additionalProperties": {"type": "string", "description": "Digit-map patterns (dial-plan "
                                                                      "syntax); names are a-z, 0-9, _"}}


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


@functools.cache
def openapi_document() -> dict[str, Any]:
    schemas: dict[str, Any] = {f"{name.capitalize()}Config": _schema(name) for name in SECTIONS}
    _schemas("ports", schemas)
    schemas.update({_camel(name): _mapping_schema(name) for name in mapping_sections()})
    schemas["Errors"] = {"type": "object", "properties": {"errors": {"type": "array", "items": {
        "type": "object", "properties": {"field": {"type": "string", "examples": ["ports[0].extension"]},
                                         "message": {"type": "string"}}}}}}
    schemas["Applied"] = {"type": "object", "properties": {
        "reconfigured_ports": {"type": "array", "items": {"type": "integer"}},
        "deferred_ports": {"type": "array", "items": {"type": "integer"},
                           "description": "Ports in a call: they take the new settings when it ends."},
        "sip_restarted": {"type": "boolean"},
        "restart_required": {"type": "array", "items": {"type": "string"}}}}
    schemas["PortStatus"] = {"type": "object", "properties": {
        "port": {"type": "integer", "description": "1-based"}, "extension": {"type": ["string", "null"]},
        "display_name": {"type": "string"}, "enabled": {"type": "boolean"}, "registered": {"type": "boolean"},
        "registration": {"type": "string", "enum": ["intercom", "unregistered", "registering", "registered",
                                                    "failed", "unregistering"]},
        "registration_error": {"type": ["string", "null"]}, "hook": {"type": "string", "enum": ["on", "off"]},
        "call": {"type": "string", "description": "the line state (idle, dialtone, collecting, calling, "
                                                  "ringing, connected, held, conference, disconnect, tone, "
                                                  "howler, lockout) or 'disabled'"},
        "peer": {"type": ["string", "null"]}, "connected_since": {"type": ["number", "null"]},
        "message_waiting": {"type": "boolean"}, "pending_config": {"type": "boolean"}}}
    bad = {"401": {"description": "No or bad credentials"}, "403": {"description": "Session without CSRF "
                                                                                   "token"}}
    invalid = {"422": _json(_ref("Errors"), "Invalid: every problem, per field")}
    paths: dict[str, Any] = {
        "/api/v1/status": {"get": {"summary": "Every port's status and the system's", "responses": {
            "200": _json({"type": "object", "properties": {
                "ports": {"type": "array", "items": _ref("PortStatus")},
                "system": {"type": "object"}}}), **bad}}},
        "/api/v1/events": {"get": {"summary": "WebSocket: a snapshot of every port, then each change",
                                   "description": 'Send {"levels": true} to also get each port\'s '
                                                  "mouthpiece and earpiece power in dBm0 every 240 ms "
                                                  '({"type": "levels"}); {"levels": false} stops them.',
                                   "responses": {"101": {"description": "Switching protocols"}, **bad}}},
        "/api/v1/config": {"get": {"summary": "The whole configuration (secrets masked)",
                                   "responses": {"200": _json({"type": "object"}), **bad}}},
        "/api/v1/config/ports/{n}": {
            "parameters": [{"name": "n", "in": "path", "required": True,
                            "schema": {"type": "integer", "minimum": 1}}],
            "get": {"summary": "One port's settings", "responses": {"200": _json(_ref("PortConfig")), **bad}},
            "put": {"summary": "Change the given settings of a port (a port after the last one is added); "
                               "applied live", "requestBody": {"content": {"application/json": {
                                   "schema": _ref("PortConfig")}}},
                    "responses": {"200": _json({"type": "object", "properties": {
                        "config": _ref("PortConfig"), "applied": _ref("Applied")}}), **invalid, **bad}}},
        "/api/v1/history": {"get": {"summary": "Call history, newest first", "parameters": [
            {"name": "search", "in": "query", "schema": {"type": "string"}},
            {"name": "port", "in": "query", "schema": {"type": "integer", "minimum": 1}},
            {"name": "direction", "in": "query",
             "schema": {"type": "string", "enum": ["in", "out", "local"]}},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000}}],
            "responses": {"200": _json({"type": "object"}), **bad}}},
        "/api/v1/history.csv": {"get": {"summary": "Call history as CSV (same filters)", "responses": {
            "200": {"description": "CSV", "content": {"text/csv": {}}}, **bad}}},
        "/api/v1/tokens": {"get": {"summary": "API tokens (never their values)", "responses": {
            "200": _json({"type": "object"}), **bad}},
            "post": {"summary": "Create a token; its value is in this response only", "requestBody": {
                "content": {"application/json": {"schema": {"type": "object", "properties": {
                    "name": {"type": "string"}}, "required": ["name"]}}}},
                "responses": {"201": _json({"type": "object"}), **invalid, **bad}}},
        "/api/v1/tokens/{id}": {"delete": {"summary": "Revoke a token", "parameters": [
            {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "responses": {"204": {"description": "Revoked"}, **bad}}},
        "/api/v1/backup": {"get": {"summary": "The configuration file (TOML, with secrets)", "responses": {
            "200": {"description": "TOML", "content": {"application/toml": {}}}, **bad}},
            "put": {"summary": "Restore a configuration file (validated first; applied live)",
                    "requestBody": {"content": {"application/toml": {}}},
                    "responses": {"200": _json({"type": "object"}), **invalid, **bad}}},
        "/api/v1/openapi.json": {"get": {"summary": "This document (public: no value of this device in it)",
                                         "security": [], "responses": {"200": _json({"type": "object"})}}},
        "/api/v1/restart": {"post": {"summary": "Restart the gateway (re-reads the config file)",
                                     "responses": {"202": _json({"type": "object"}), **bad}}},
    }
    sections = {**{name: f"{name.capitalize()}Config" for name in SECTIONS},
                **{name: _camel(name) for name in mapping_sections()}}
    for name, schema_name in sections.items():
        schema = _ref(schema_name)
        paths[f"/api/v1/config/{name}"] = {
            "get": {"summary": f"The [{name}] settings", "responses": {"200": _json(schema), **bad}},
            "put": {"summary": f"Change the given [{name}] settings; applied live", "requestBody": {
                "content": {"application/json": {"schema": schema}}},
                "responses": {"200": _json({"type": "object", "properties": {
                    "config": schema, "applied": _ref("Applied")}}), **invalid, **bad}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Hookflash", "version": version(),
                 "description": "Analog telephone adapter: status, configuration, call history. Ports count "
                                "from 1. Authenticate with 'Authorization: Bearer <token>' (System page)."},
        "servers": [{"url": "/"}],
        "components": {"schemas": schemas, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "session": {"type": "apiKey", "in": "cookie", "name": "hookflash_session"}}},
        "security": [{"bearer": []}, {"session": []}],
        "paths": paths,
    }
