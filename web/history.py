"""Call history queries for the page and the API: search, port and direction filters, CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from firmware.app import Gateway
from firmware.store.history import CallRecord

DIRECTIONS = ("in", "out", "local")
MAX_ROWS = 10_000


@dataclass(frozen=True)
class Query:
    search: str | None = None
    port: int | None = None
    """0-based."""
    direction: str | None = None
    limit: int = 500

    @classmethod
    def from_request(cls, request: web.Request, ports: int) -> Query:
        """From `?search=&port=N(1-based)&direction=&limit=`; a bad value is a 400 naming it."""
        q = request.query
        port = q.get("port") or None
        if port is not None and (not port.isdigit() or not 1 <= int(port) <= ports):
            raise web.HTTPBadRequest(text=f"port must be 1..{ports}")
        direction = q.get("direction") or None
        if direction is not None and direction not in DIRECTIONS:
            raise web.HTTPBadRequest(text=f"direction must be one of {', '.join(DIRECTIONS)}")
        limit = q.get("limit", "500")
        if not limit.isdigit() or not 1 <= int(limit) <= MAX_ROWS:
            raise web.HTTPBadRequest(text=f"limit must be 1..{MAX_ROWS}")
        return cls(q.get("search") or None, int(port) - 1 if port else None, direction, int(limit))


def find(gateway: Gateway, query: Query) -> list[CallRecord]:
    if gateway.history is None:
        return []
    if query.direction is None:
        return gateway.history.recent(query.limit, query.port, query.search)
    records = gateway.history.recent(MAX_ROWS, query.port, query.search)
    return [r for r in records if r.direction == query.direction][:query.limit]


def as_json(r: CallRecord) -> dict[str, Any]:
    stats = r.stats
    return {"id": r.id, "port": r.port + 1, "direction": r.direction, "caller": r.caller, "callee": r.callee,
            "start": r.start, "answer": r.answer, "end": r.end, "duration_s": round(r.duration, 1),
            "cause": r.cause, "mos": stats.mos if stats else None,
            "loss_pct": stats.loss_pct if stats else None,
            "jitter_mean_ms": stats.jitter_mean_ms if stats else None}


CSV_COLUMNS = ("id", "port", "direction", "caller", "callee", "start", "answer", "end", "duration_s", "cause",
               "mos", "loss_pct", "jitter_mean_ms")


def _cell(value: object) -> object:
    """Numbers come from outside (a SIP From header): a cell a spreadsheet would run as a formula gets
    a leading quote (OWASP "CSV Injection")."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def csv_response(request: web.Request) -> web.Response:
    from web.server import state

    gateway = state(request).gateway
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for record in find(gateway, Query.from_request(request, gateway.board.ports)):
        row = as_json(record)
        for key in ("start", "answer", "end"):
            if row[key] is not None:
                row[key] = datetime.fromtimestamp(row[key]).isoformat(timespec="seconds")
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return web.Response(text=out.getvalue(), content_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="hookflash-calls.csv"'})
