"""The REST API under /api/v1 (JSON; described by /api/v1/openapi.json) and the WebSocket event stream.

Authentication is the server middleware's: a session (with the CSRF header on writes) or a Bearer
token. Ports count from 1, as on the case. Config PUTs replace the given keys of one section or one
port and keep the others (a write-only secret given as "******" or left out keeps its value); the
result goes through the config schema like the config file: invalid -> 422 with every problem as
`{"errors": [{"field": "sip.expires", "message": "must be 60..86400, got 5"}]}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import WSMessage, WSMsgType, web

from firmware.app import Applied
from firmware.config import ConfigError, FieldError
from firmware.config.store import dumps
from web import history
from web.fields import SECTIONS, merge, public
from web.levels import LevelStream
from web.openapi import openapi_document
from web.pages import restore_document
from web.server import state
from web.sysinfo import system_info

routes = web.RouteTableDef()
SOCKETS = web.AppKey("sockets", weakref.WeakSet[web.WebSocketResponse])
"""Open event streams, closed when the app shuts down."""
LEVELS = web.AppKey("levels", LevelStream)
"""The live audio levels of the Status page (a pipeline tap only while a page asks for them)."""


def _errors(errors: list[FieldError], status: int = 422) -> web.Response:
    listed = [{"field": e.path, "message": e.message} for e in errors]
    return web.json_response({"errors": listed}, status=status)


def _applied(applied: Applied) -> dict[str, Any]:
    return {"reconfigured_ports": [p + 1 for p in applied.reconfigured],
            "deferred_ports": [p + 1 for p in applied.deferred], "sip_restarted": applied.sip_restarted,
            "restart_required": list(applied.restart_required)}


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text='the body must be a JSON object, e.g. {"expires": 600}') from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='the body must be a JSON object, e.g. {"expires": 600}')
    return body


@routes.get("/api/v1/status")
async def status(request: web.Request) -> web.StreamResponse:
    gateway = state(request).gateway
    snap = gateway.snapshot()
    system = {**system_info(gateway.started), "backend": snap["backend"], "sip": snap["sip"]}
    return web.json_response({"ports": snap["ports"], "system": system})


@routes.get("/api/v1/config")
async def config_all(request: web.Request) -> web.StreamResponse:
    doc = state(request).editor.document()
    out: dict[str, Any] = {name: public(name, doc[name]) for name in SECTIONS}
    out["ports"] = [public("ports", p) for p in doc["ports"]]
    return web.json_response(out)


def _section(request: web.Request) -> str:
    name = request.match_info["section"]
    if name not in SECTIONS:
        raise web.HTTPNotFound(text=f"no config section {name!r}; sections: {', '.join(SECTIONS)}, ports/N")
    return name


@routes.get("/api/v1/config/{section:[a-z]+}")
async def config_section(request: web.Request) -> web.StreamResponse:
    name = _section(request)
    return web.json_response(public(name, state(request).editor.document()[name]))


@routes.put("/api/v1/config/{section:[a-z]+}")
async def config_section_put(request: web.Request) -> web.StreamResponse:
    name = _section(request)
    body = await _json_object(request)
    editor = state(request).editor
    doc = editor.document()
    try:
        _config, applied = await editor.commit({**doc, name: merge(name, doc[name], body)})
    except ConfigError as exc:
        return _errors(exc.errors)
    return web.json_response({"config": public(name, editor.document()[name]), "applied": _applied(applied)})


def _port(request: web.Request, *, allow_new: bool) -> int:
    gateway = state(request).gateway
    index = int(request.match_info["n"]) - 1
    limit = min(gateway.board.ports, len(gateway.config.ports) + (1 if allow_new else 0))
    if not 0 <= index < limit:
        raise web.HTTPNotFound(text=f"no port {index + 1}: ports 1..{limit}")
    return index


@routes.get("/api/v1/config/ports/{n:[0-9]+}")
async def config_port(request: web.Request) -> web.StreamResponse:
    index = _port(request, allow_new=False)
    return web.json_response(public("ports", state(request).editor.document()["ports"][index]))


@routes.put("/api/v1/config/ports/{n:[0-9]+}")
async def config_port_put(request: web.Request) -> web.StreamResponse:
    index = _port(request, allow_new=True)
    body = await _json_object(request)
    editor = state(request).editor
    doc = editor.document()
    ports = list(doc["ports"])
    if index < len(ports):
        ports[index] = merge("ports", ports[index], body)
    else:
        ports.append(merge("ports", {}, body))
    try:
        _config, applied = await editor.commit({**doc, "ports": ports})
    except ConfigError as exc:
        return _errors(exc.errors)
    return web.json_response({"config": public("ports", editor.document()["ports"][index]),
                              "applied": _applied(applied)})


@routes.get("/api/v1/history")
async def history_json(request: web.Request) -> web.StreamResponse:
    gateway = state(request).gateway
    query = history.Query.from_request(request, gateway.board.ports)
    return web.json_response({"calls": [history.as_json(r) for r in history.find(gateway, query)]})


@routes.get("/api/v1/history.csv")
async def history_csv(request: web.Request) -> web.StreamResponse:
    return history.csv_response(request)


@routes.get("/api/v1/tokens")
async def tokens(request: web.Request) -> web.StreamResponse:
    return web.json_response({"tokens": [{"id": t.id, "name": t.name, "created": t.created, "used": t.used}
                                         for t in state(request).auth.tokens()]})


@routes.post("/api/v1/tokens")
async def token_create(request: web.Request) -> web.StreamResponse:
    body = await _json_object(request)
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        return _errors([FieldError("name", "must be a non-empty string")])
    token, clear = state(request).auth.create_token(name)
    return web.json_response({"id": token.id, "name": token.name, "token": clear}, status=201)


@routes.delete("/api/v1/tokens/{id:[0-9]+}")
async def token_delete(request: web.Request) -> web.StreamResponse:
    if not state(request).auth.revoke_token(int(request.match_info["id"])):
        raise web.HTTPNotFound(text="no such token")
    return web.Response(status=204)


@routes.get("/api/v1/backup")
async def backup(request: web.Request) -> web.StreamResponse:
    return web.Response(text=dumps(state(request).editor.document()), content_type="application/toml")


@routes.put("/api/v1/backup")
async def restore(request: web.Request) -> web.StreamResponse:
    editor = state(request).editor
    try:
        _config, applied = await editor.commit(restore_document(await request.read()))
    except ConfigError as exc:
        return _errors(exc.errors)
    return web.json_response({"applied": _applied(applied)})


@routes.post("/api/v1/restart")
async def restart(request: web.Request) -> web.StreamResponse:
    state(request).restart()
    return web.json_response({"restarting": True}, status=202)


@routes.get("/api/v1/openapi.json")
async def openapi(request: web.Request) -> web.StreamResponse:
    return web.json_response(openapi_document())


@routes.get("/api/v1/events")
async def events(request: web.Request) -> web.StreamResponse:
    """The status of every port now, then each port's status whenever it changes:
    `{"type": "snapshot", "ports": [...]}`, then `{"type": "port", "port": {...}}`. A client that
    sends `{"levels": true}` also gets `{"type": "levels", "interval_s", "ports": [{"port",
    "mouthpiece_dbm0", "earpiece_dbm0"}]}` ~4 times a second until it sends `{"levels": false}`."""
    gateway = state(request).gateway
    ws = web.WebSocketResponse(heartbeat=30.0)
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    outbox = _Outbox()
    levels = request.app[LEVELS]
    unsubscribe = gateway.subscribe(outbox.port)
    stop_levels: Callable[[], None] | None = None
    sender = asyncio.ensure_future(_send(ws, outbox, gateway.snapshot()["ports"]))
    try:
        async for message in ws:
            if message.type is WSMsgType.ERROR:
                break
            wanted = _levels_request(message)
            if wanted is None:
                outbox.put({"type": "error", "error": 'send {"levels": true} or {"levels": false}'})
            elif wanted and stop_levels is None:
                stop_levels = levels.subscribe(lambda ports: outbox.levels(
                    {"type": "levels", "interval_s": levels.interval_s, "ports": ports}))
            elif not wanted and stop_levels is not None:
                stop_levels()
                stop_levels = None
    finally:
        unsubscribe()
        if stop_levels is not None:
            stop_levels()
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):  # the client may be gone
            await sender
    return ws


def _levels_request(message: WSMessage) -> bool | None:
    """`{"levels": true|false}` -> the bool; anything else -> None."""
    if message.type is not WSMsgType.TEXT:
        return None
    try:
        body = json.loads(message.data)
    except ValueError:
        return None
    wanted = body.get("levels") if isinstance(body, dict) else None
    return wanted if isinstance(wanted, bool) else None


class _Outbox:
    """What one event stream still has to send: status changes in order, levels latest-only (a slow
    client skips readings instead of queueing them; a stalled one loses the oldest changes, not our
    memory)."""

    def __init__(self) -> None:
        self._queue: deque[dict[str, Any]] = deque(maxlen=1000)
        self._levels: dict[str, Any] | None = None
        self._wake = asyncio.Event()

    def put(self, message: dict[str, Any]) -> None:
        self._queue.append(message)
        self._wake.set()

    def port(self, status: dict[str, Any]) -> None:
        self.put({"type": "port", "port": status})

    def levels(self, message: dict[str, Any]) -> None:
        self._levels = message
        self._wake.set()

    async def next(self) -> dict[str, Any]:
        while True:
            if self._queue:
                return self._queue.popleft()
            if self._levels is not None:
                message, self._levels = self._levels, None
                return message
            self._wake.clear()
            await self._wake.wait()


async def _send(ws: web.WebSocketResponse, outbox: _Outbox, ports: list[Any]) -> None:
    await ws.send_json({"type": "snapshot", "ports": ports})
    while not ws.closed:
        await ws.send_json(await outbox.next())


async def close_sockets(app: web.Application) -> None:
    sockets: weakref.WeakSet[web.WebSocketResponse] = app[SOCKETS]
    for ws in list(sockets):
        await ws.close(code=1001, message=b"server shutting down")
    app[LEVELS].close()
