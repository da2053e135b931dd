"""The aiohttp application on the gateway's loop: pages, the REST API under /api/v1, static files.

Security lives in one middleware every route passes through (so a route added later, by this
package or an optional module, cannot forget it):

- until the admin password is set, only /setup answers (pages redirect there, the API says 401);
- pages need a session cookie (HttpOnly, SameSite=Strict, Secure under HTTPS), else /login;
- /api/ needs a session or an `Authorization: Bearer` API token, else 401 — except the OpenAPI
  document, which is public: it describes the schema the source code already publishes and holds
  no value of this device;
- a state-changing request made with the session cookie must carry the session's CSRF token (form
  field `csrf` or header `X-CSRF-Token`), else 403; Bearer requests carry no ambient authority and
  need none. A WebSocket must come from our own origin (cross-site WebSocket hijacking).

Simulator control, the WebRTC handset and diagnostics (`_Panels`) mount their RouteTableDefs here
too, so they inherit all of the above.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from firmware.app import Gateway
from firmware.config import ConfigStore
from web.auth import AuthStore, Session
from web.configedit import ConfigEditor
from web.levels import LevelStream
from web.logring import LogRing
from web.ratelimit import LoginLimiter

_log = logging.getLogger("hookflash.web")
STATIC = Path(__file__).with_name("static")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SESSION_COOKIE = "hookflash_session"
PRE_COOKIE = "hookflash_pre"
"""Double-submit CSRF cookie of the setup and login forms (there is no session yet)."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_API = frozenset({"/api/v1/openapi.json"})
OPEN_PAGES = frozenset({"/login", "/setup"})
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; media-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action "
       "'self'")


@dataclass
class WebState:
    """What every handler needs, stored once on the app."""

    gateway: Gateway
    auth: AuthStore
    editor: ConfigEditor
    limiter: LoginLimiter
    logs: LogRing
    restart: Callable[[], None]
    https: bool
    hashing: asyncio.Semaphore
    """One scrypt at a time: each takes 128 MiB, a burst of logins must not exhaust a Pi's memory."""


STATE = web.AppKey("state", WebState)
SESSION = web.RequestKey("session", Session)
PRINCIPAL = web.RequestKey("principal", str)
"""Who makes the request: "admin" (a session) or "token NAME"."""


def state(request: web.Request) -> WebState:
    return request.app[STATE]


class _Panels:
    """The diagnostics and handset services and the simulator routes, mounted behind
    `security_middleware`; the services hold peer connections and pipeline taps, closed on cleanup."""

    def __init__(self, gateway: Gateway) -> None:
        from web.diagnostics import DiagnosticsService
        from web.handset import HandsetService
        from web.sim import sim_routes

        self.handsets = HandsetService(gateway)
        self.diagnostics = DiagnosticsService(gateway)
        self.routes = [sim_routes(gateway), self.handsets.routes, self.diagnostics.routes]

    async def close(self) -> None:
        await self.handsets.close()
        await self.diagnostics.close()


PANELS = web.AppKey("panels", _Panels)


def _unauthorized(request: web.Request, why: str) -> web.StreamResponse:
    if request.path.startswith("/api/"):
        return web.json_response({"error": why}, status=401,
                                 headers={"WWW-Authenticate": 'Bearer realm="hookflash"'})
    return web.HTTPSeeOther("/login")


async def _csrf_sent(request: web.Request) -> str:
    sent = request.headers.get("X-CSRF-Token")
    if sent is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        value = (await request.post()).get("csrf")
        sent = value if isinstance(value, str) else None
    return sent or ""


@web.middleware
async def security_middleware(request: web.Request,
                              handler: Handler) -> web.StreamResponse:
    path = request.path
    if path.startswith("/static/") or path in PUBLIC_API:
        return await handler(request)
    st = state(request)
    if not st.auth.has_password:
        if path == "/setup":
            return await handler(request)
        if path.startswith("/api/"):
            return _unauthorized(request, "set the admin password first (open the web page)")
        raise web.HTTPSeeOther("/setup")
    if path in OPEN_PAGES:
        return await handler(request)
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer ") and path.startswith("/api/"):
        token = st.auth.check_token(header[7:].strip())
        if token is None:
            return _unauthorized(request, "unknown or revoked API token")
        request[PRINCIPAL] = f"token {token.name}"
        return await handler(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    session = st.auth.session(cookie) if cookie else None
    if session is None:
        return _unauthorized(request, "log in, or send an API token as 'Authorization: Bearer ...'")
    request[SESSION] = session
    request[PRINCIPAL] = "admin"
    unsafe = request.method not in SAFE_METHODS
    if unsafe and not hmac.compare_digest(await _csrf_sent(request), session.csrf):
        _log.warning("refused %s %s from %s: missing or wrong CSRF token", request.method, path,
                     request.remote)
        if path.startswith("/api/"):
            return web.json_response({"error": "missing or wrong CSRF token"}, status=403)
        raise web.HTTPForbidden(text="Refused: the form was not sent from this device's own page (CSRF token "
                                     "missing or wrong). Reload the page and try again.")
    if request.headers.get("Upgrade", "").lower() == "websocket" and not _same_origin(request):
        raise web.HTTPForbidden(text="WebSocket from another origin")
    return await handler(request)


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser: a browser always sends Origin on a WebSocket handshake
    return origin.split("://", 1)[-1] == request.host


@web.middleware
async def headers_middleware(request: web.Request,
                             handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
    if isinstance(response, web.HTTPException) and response.status >= 300:
        raise response
    return response


def set_session_cookie(response: web.StreamResponse, request: web.Request, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Strict", secure=state(request).https,
                        path="/")


def pre_token(request: web.Request, response_headers: dict[str, str]) -> str:
    """The double-submit token for a logged-out form (reusing the cookie when there is one)."""
    token = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(24)
    secure = "; Secure" if state(request).https else ""
    response_headers["Set-Cookie"] = f"{PRE_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}"
    return token


def pre_token_ok(request: web.Request, sent: str) -> bool:
    cookie = request.cookies.get(PRE_COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie, sent)


def create_app(gateway: Gateway, store: ConfigStore, *, auth: AuthStore | None = None,
               limiter: LoginLimiter | None = None, logs: LogRing | None = None,
               restart: Callable[[], None] | None = None, https: bool = False,
               extra_routes: Sequence[web.RouteTableDef] = ()) -> web.Application:
    """The web application for a running `gateway` whose config file is `store`."""
    from web import api, pages

    app = web.Application(middlewares=[headers_middleware, security_middleware], client_max_size=2 * 1024**2)
    data_dir = Path(gateway.config.system.data_dir)
    app[STATE] = WebState(
        gateway=gateway, auth=auth or AuthStore(data_dir / "web.db"), editor=ConfigEditor(gateway, store),
        limiter=limiter or LoginLimiter(), logs=logs or LogRing(), restart=restart or _no_restart,
        https=https, hashing=asyncio.Semaphore(1))
    app[api.SOCKETS] = weakref.WeakSet()
    app[api.LEVELS] = LevelStream(gateway.pipeline)
    app.add_routes(pages.routes)
    app.add_routes(api.routes)
    app[PANELS] = _Panels(gateway)
    for table in [*app[PANELS].routes, *extra_routes]:
        app.add_routes(table)
    app.router.add_static("/static/", STATIC)
    app.on_cleanup.append(_close)
    return app


def _no_restart() -> None:
    raise web.HTTPServiceUnavailable(text="restart is not available here")


async def _close(app: web.Application) -> None:
    from web.api import close_sockets

    await close_sockets(app)
    await app[PANELS].close()
    app[STATE].auth.close()


async def start_web(gateway: Gateway, store: ConfigStore, logs: LogRing,
                    restart: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    """Serve the web app as configured in `[web]`; returns the coroutine function that stops it."""
    from web.tls import self_signed, server_context

    cfg = gateway.config.web
    host, port = cfg.host_port
    context = None
    if cfg.uses_https:
        if cfg.cert_file:
            cert, key = Path(cfg.cert_file), Path(cfg.key_file)
        else:
            cert, key = await asyncio.to_thread(self_signed, Path(gateway.config.system.data_dir), host)
        context = server_context(cert, key)
    app = create_app(gateway, store, logs=logs, restart=restart, https=context is not None)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host or None, port, ssl_context=context)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    _log.info("web page at %s (listening on %s)", cfg.url, cfg.listen)
    return runner.cleanup
