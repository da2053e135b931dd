"""What every JSON route of the API shares: errors as `{"error": message}`, a bounded JSON body,
and port numbers as users see them (1-based) checked against the board."""

from __future__ import annotations

import json
from typing import Any, NoReturn

from aiohttp import web

from firmware.app import Gateway

MAX_JSON_BYTES = 64 * 1024
"""A control request is a few fields; anything larger is refused before it is parsed."""


class _TooLarge(web.HTTPClientError):
    """413 with our JSON body (aiohttp's own class wants the sizes and writes its own text)."""

    status_code = 413


_ERRORS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest, 404: web.HTTPNotFound, 409: web.HTTPConflict, 413: _TooLarge,
}


def fail(status: int, message: str) -> NoReturn:
    """Raise an HTTP error (one of `_ERRORS`) whose body is `{"error": message}`."""
    raise _ERRORS[status](text=json.dumps({"error": message}), content_type="application/json")


def port_index(request: web.Request, gateway: Gateway) -> int:
    """The board index of the `{n}` in the path (1-based for people); 404 for a port the board lacks."""
    text = request.match_info["n"]
    ports = gateway.board.ports
    if not text.isdigit() or not 1 <= int(text) <= ports:
        fail(404, f"no port {text}: this gateway has ports 1..{ports}")
    return int(text) - 1


async def read_body(request: web.Request, limit: int, what: str) -> bytes:
    """The whole body, refused with 413 as soon as it exceeds `limit` bytes (never buffered beyond)."""
    if request.content_length is not None and request.content_length > limit:
        fail(413, f"{what} over {limit} bytes")
    chunks, size = [], 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            fail(413, f"{what} over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: web.Request, *, required: bool = True) -> dict[str, Any]:
    """The body as a JSON object; 400 with the reason when it is not one (or 413 when too big).
    An empty body is `{}` when not `required`."""
    raw = await read_body(request, MAX_JSON_BYTES, "request body")
    if not raw.strip():
        if required:
            fail(400, "request body must be a JSON object")
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        fail(400, f"request body is not valid JSON: {exc}")
    if not isinstance(body, dict):
        fail(400, "request body must be a JSON object")
    return body


def check_fields(body: dict[str, Any], allowed: set[str]) -> None:
    """400 naming any field the route does not know (a misspelt field must not be ignored silently)."""
    unknown = sorted(set(body) - allowed)
    if unknown:
        fail(400, f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def number(body: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    """A numeric field within [low, high], else 400 naming it."""
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        fail(400, f"{key} must be a number from {low:g} to {high:g}")
    return float(value)
