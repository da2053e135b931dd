"""The pages: first-run setup, login, Status, Ports, SIP server, Regional, Call history, System.

GET renders the form from the running config; POST validates through the config schema, shows each
problem beside its field (and keeps what was typed), or saves and applies live and says what
happened to which port.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import time
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiohttp import web

from dsp.tones import Tone, country
from firmware.app import Applied
from firmware.config import ConfigError, FieldError, parse_config
from firmware.config.store import dumps, to_dict
from web import history
from web.auth import PasswordError
from web.configedit import (
    class_rows,
    classes_from_form,
    copy_port,
    errors_by_field,
    flat_fields,
    from_form,
    import_ports_csv,
    mapping_from_form,
    ports_csv,
)
from web.fields import mapping_doc, mapping_sections, section_fields
from web.html import csrf_field, errors_block, esc, fields_html, page, table
from web.server import (
    SESSION,
    SESSION_COOKIE,
    WebState,
    pre_token,
    pre_token_ok,
    set_session_cookie,
    state,
)
from web.sysinfo import system_info
from web.tls import CertificateError, install_owner_certificate

routes = web.RouteTableDef()


def _html(text: str, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=text, content_type="text/html", status=status, headers=headers)


def _csrf(request: web.Request) -> str:
    return str(request[SESSION].csrf)


async def _form(request: web.Request) -> dict[str, str]:
    """The posted fields; a name sent more than once (a list of checkboxes) joined with commas, as a
    list field is typed."""
    out: dict[str, str] = {}
    for k, v in (await request.post()).items():
        if isinstance(v, str):
            out[k] = f"{out[k]},{v}" if k in out else v
    return out


def applied_text(applied: Applied) -> str:
    """What a save did, in words an owner understands."""
    parts = ["Saved."]
    if applied.sip_restarted:
        parts.append("The SIP settings changed: every port re-registers (calls through the PBX ended).")
    if applied.reconfigured:
        parts.append(f"Applied now to port {', '.join(str(p + 1) for p in applied.reconfigured)}.")
    if applied.deferred:
        parts.append(f"Port {', '.join(str(p + 1) for p in applied.deferred)} is in a call and takes the new "
                     "settings when it hangs up.")
    if applied.restart_required:
        parts.append(f"Restart the gateway (System page) to apply: {', '.join(applied.restart_required)}.")
    return " ".join(parts)


# -- first run, login, logout ----------------------------------------------------------------------

def _password_page(request: web.Request, *, setup: bool, error: str = "", status: int = 200) -> web.Response:
    headers: dict[str, str] = {}
    token = pre_token(request, headers)
    if setup:
        title, action = "Welcome: set the admin password", "/setup"
        intro = ("<p>This password protects the web page and the API. There is no default password: "
                 "choose one of at least 8 characters.</p>")
        inputs = ('<div class="field"><label for="password">New password</label><input type="password" '
                  'id="password" name="password" autocomplete="new-password" required minlength="8"></div>'
                  '<div class="field"><label for="confirm">Repeat it</label><input type="password" '
                  'id="confirm" '
                  'name="confirm" autocomplete="new-password" required></div>')
    else:
        title, action, intro = "Log in", "/login", ""
        inputs = ('<div class="field"><label for="password">Admin password</label><input type="password" '
                  'id="password" name="password" autocomplete="current-password" required autofocus></div>')
    err = f'<p class="field-error" role="alert">{esc(error)}</p>' if error else ""
    body = (f'{intro}<form method="post" action="{action}" class="narrow">{csrf_field(token)}{inputs}{err}'
            f'<button type="submit">{"Set password" if setup else "Log in"}</button></form>')
    return _html(page(title, body, csrf=None), status=status, headers=headers)


async def _login_response(request: web.Request) -> web.StreamResponse:
    session = state(request).auth.new_session()
    response = web.HTTPSeeOther("/")
    set_session_cookie(response, request, session.token)
    return response


@routes.get("/setup")
async def setup_form(request: web.Request) -> web.StreamResponse:
    if state(request).auth.has_password:
        raise web.HTTPSeeOther("/login")
    return _password_page(request, setup=True)


@routes.post("/setup")
async def setup(request: web.Request) -> web.StreamResponse:
    st = state(request)
    if st.auth.has_password:
        raise web.HTTPSeeOther("/login")
    form = await _form(request)
    if not pre_token_ok(request, form.get("csrf", "")):
        raise web.HTTPForbidden(text="Refused: the form did not come from this page (CSRF token). Reload it.")
    password = form.get("password", "")
    if password != form.get("confirm"):
        return _password_page(request, setup=True, error="The two passwords differ.", status=422)
    try:
        async with st.hashing:
            if st.auth.has_password:  # another browser finished first while we waited
                raise web.HTTPSeeOther("/login")
            await st.auth.set_password_async(password)
    except PasswordError as exc:
        return _password_page(request, setup=True, error=f"The password {exc}.", status=422)
    return await _login_response(request)


@routes.get("/login")
async def login_form(request: web.Request) -> web.StreamResponse:
    return _password_page(request, setup=False)


@routes.post("/login")
async def login(request: web.Request) -> web.StreamResponse:
    st = state(request)
    form = await _form(request)
    if not pre_token_ok(request, form.get("csrf", "")):
        raise web.HTTPForbidden(text="Refused: the form did not come from this page (CSRF token). Reload it.")
    client = request.remote or "unknown"
    wait = st.limiter.retry_after(client, time.monotonic())
    if wait > 0:
        response = _password_page(request, setup=False, status=429,
                                  error=f"Too many wrong passwords: try again in {wait:.0f} s.")
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    async with st.hashing:
        ok = await st.auth.check_password_async(form.get("password", ""))
    if not ok:
        st.limiter.failed(client, time.monotonic())
        return _password_page(request, setup=False, error="Wrong password.", status=401)
    return await _login_response(request)


@routes.post("/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    state(request).auth.end_session(request[SESSION].token)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


# -- Status ------------------------------------------------------------------------------------------

def _duration(since: float | None) -> str:
    if since is None:
        return ""
    seconds = int(time.time() - since)
    return f"{seconds // 60}:{seconds % 60:02d}"


PENDING = "new settings after this call"
LEVELS_CELL = '<span class="levels muted">—</span>'
"""Filled by status.js from the event stream's levels (there is nothing to show without script)."""


def status_row(p: dict[str, Any]) -> list[str]:
    reg = f'<span class="pill {esc(p["registration"])}">{esc(p["registration"])}</span>'
    if p["registration_error"]:
        reg += f'<small class="field-error">{esc(p["registration_error"])}</small>'
    call = f'<span class="pill {esc(p["call"])}">{esc(p["call"])}</span>'
    if p["pending_config"]:
        call += f'<small class="help">{PENDING}</small>'
    return [str(p["port"]), esc(p["extension"] or "—"), reg,
            esc(p["hook"] + "-hook"), call,
            esc(p["peer"] or ""), f'<span class="duration" data-since="{esc(p["connected_since"] or "")}">'
            f'{_duration(p["connected_since"])}</span>', LEVELS_CELL]


@routes.get("/")
async def status_page(request: web.Request) -> web.StreamResponse:
    gw = state(request).gateway
    snap = gw.snapshot()
    rows = [status_row(p) for p in snap["ports"]]
    info = system_info(gw.started)
    temp = f"{info['temperature_c']:.1f} °C" if info["temperature_c"] is not None else "not available"
    boot = _uptime(info["system_uptime_s"]) if info["system_uptime_s"] is not None else "not available"
    system = ('<dl class="facts" id="system"><dt>Version</dt><dd '
              f'data-key="version">{esc(info["version"])}</dd>'
              f'<dt>Gateway running for</dt><dd data-key="uptime">{esc(_uptime(info["uptime_s"]))}</dd>'
              f'<dt>System up for</dt><dd data-key="system_uptime">{esc(boot)}</dd>'
              f'<dt>CPU load (1/5/15 min)</dt><dd data-key="load">{esc(" / ".join(map(str, info["load"])))}'
              f' on {info["cpus"]} cores</dd><dt>Temperature</dt><dd data-key="temperature">{esc(temp)}</dd>'
              f'<dt>Backend</dt><dd>{esc(snap["backend"])}</dd><dt>PBX</dt><dd>{esc(snap["sip"])}</dd></dl>')
    ports = table(["Port", "Extension", "Registration", "Hook", "Call", "Peer", "Duration",
                   "Audio (dBm0)"], rows,
                  attrs=' id="ports" class="live"')
    body = (f'<section><h2>Ports <small id="live" class="muted">connecting…</small></h2>{ports}</section>'
            f'<section><h2>System</h2>{system}</section>')
    return _html(page("Status", body, csrf=_csrf(request), active="/", scripts=["app.js", "status.js"]))


def _uptime(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(seconds)))


# -- config sections -----------------------------------------------------------------------------

SECTION_PAGES = {"sip": ("/sip", "SIP server", "How the ports reach the PBX: registrar, proxy, transport, "
                          "security. Leave the registrar empty to use the ports as an intercom only."),
                 "regional": ("/regional", "Regional", "The country sets the tones, ring cadence and "
                                                       "frequency "
                              "and the caller-ID standard.")}


def country_summary(code: str) -> str:
    """What the running country means on the line: its tones, ring cadences and caller-ID standard."""
    c = country(code)

    def cadence(segments: Iterable[tuple[int, int]]) -> str:
        runs = [(len(list(group)), pair) for pair, group in itertools.groupby(segments)]
        return ", ".join(f"{n} × {on}/{off} ms" if n > 1 else f"{on}/{off} ms" for n, (on, off) in runs) \
            or "continuous"

    def freqs(t: Tone) -> str:
        parts = [t.components] if t.components else [s.components for s in (*t.intro, *t.cadence)]
        chords = (" + ".join(f"{p.freq_hz:g} Hz" for p in part) for part in parts if part)
        return ", ".join(dict.fromkeys(chords))

    def timing(t: Tone) -> str:
        steady = cadence((s.on_ms, s.off_ms) for s in t.cadence)
        if t.intro:
            return f"{cadence((s.on_ms, s.off_ms) for s in t.intro)}, then {steady}"
        return steady if t.repeat else f"{steady}, once"

    rows = [[esc(name.replace("_", " ")), esc(freqs(t)), esc(timing(t))]
            for name, t in sorted(c.tones.items())]
    rings = [[esc(name), esc(cadence(r.segments))] for name, r in
             [("normal", c.ring), *sorted(c.distinctive_rings.items())]]
    return (f'<section><h2>{esc(c.name)} ({esc(c.code)}) on the line</h2><dl class="facts">'
            f'<dt>Caller ID</dt><dd>{esc(c.callerid_standard)}</dd><dt>Ring frequency</dt>'
            f'<dd>{c.ring_frequency_hz:g} Hz</dd><dt>Source</dt><dd>{esc(c.source)}</dd></dl>'
            f'<h3>Tones</h3>{table(["Tone", "Frequencies", "Cadence (on/off)"], rows)}'
            f'<h3>Ring cadences</h3>{table(["Name", "Cadence (on/off)"], rings)}</section>')


def _section_page(request: web.Request, section: str, values: dict[str, Any], errors: dict[str, str],
                  other: list[str], flash: str = "", status: int = 200) -> web.Response:
    path, title, intro = SECTION_PAGES[section]
    top = errors_block(other if other or not errors else ["see the marked fields"])
    body = (f'<p class="intro">{esc(intro)}</p>{top}'
            f'<form method="post" action="{path}" novalidate>{csrf_field(_csrf(request))}'
            f'{fields_html(section_fields(section), values, errors)}<button type="submit">Save and '
            'apply</button></form>')
    if section == "regional":
        body += country_summary(state(request).gateway.config.regional.country)
    return _html(page(title, body, csrf=_csrf(request), active=path, flash=flash), status=status)


async def _save_section(request: web.Request, section: str) -> web.Response:
    st = state(request)
    doc = st.editor.document()
    values = from_form(section, await _form(request), doc[section])
    try:
        _config, applied = await st.editor.commit({**doc, section: values})
    except ConfigError as exc:
        errors, other = errors_by_field(exc.errors, section, (f.name for f in section_fields(section)))
        return _section_page(request, section, values, errors, other, status=422)
    return _section_page(request, section, st.editor.document()[section], {}, [], flash=applied_text(applied))


@routes.get("/sip")
async def sip_page(request: web.Request) -> web.StreamResponse:
    return _section_page(request, "sip", state(request).editor.document()["sip"], {}, [])


@routes.post("/sip")
async def sip_save(request: web.Request) -> web.StreamResponse:
    return await _save_section(request, "sip")


@routes.get("/regional")
async def regional_page(request: web.Request) -> web.StreamResponse:
    return _section_page(request, "regional", state(request).editor.document()["regional"], {}, [])


@routes.post("/regional")
async def regional_save(request: web.Request) -> web.StreamResponse:
    return await _save_section(request, "regional")


# -- ports --------------------------------------------------------------------------------------------

@routes.get("/ports")
async def ports_page(request: web.Request) -> web.StreamResponse:
    return _ports_page(request)


def _ports_page(request: web.Request, flash: str = "", errors: list[str] | None = None,
                status: int = 200) -> web.Response:
    st = state(request)
    doc = st.editor.document()
    count = st.gateway.board.ports
    rows = []
    for n in range(count):
        if n < len(doc["ports"]):
            p = doc["ports"][n]
            rows.append([str(n + 1), esc(p["extension"]), esc(p["display_name"]), esc(p["auth_user"]),
                         "set" if p.get("password") else '<span class="muted">not set</span>',
                         "yes" if p["enabled"] else "no", f'<a href="/ports/{n + 1}">Edit</a>'])
        elif n == len(doc["ports"]):
            rows.append([str(n + 1), "—", "", "", "", "not configured",
                         f'<a href="/ports/{n + 1}">Set up</a>'])
    csrf = _csrf(request)
    options = "".join(f'<option value="{n + 1}">Port {n + 1}</option>' for n in range(len(doc["ports"])))
    targets = "".join(f'<label class="inline"><input type="checkbox" name="to" value="{n + 1}"> '
                      f'{n + 1}</label>'
                      for n in range(len(doc["ports"])))
    listing = table(["Port", "Extension", "Display name", "Auth user", "SIP password", "Enabled", ""], rows)
    intro = ('<p class="intro">One row per phone socket: give each the extension and SIP password your '
             'PBX assigned; where the PBX is goes on the <a href="/sip">SIP server</a> page. Without a PBX '
             'the ports call each other by extension.</p>')
    body = (f'{intro}{errors_block(errors or [])}{listing}'
            '<section><h2>Copy settings</h2><p class="help">Copies dial plan, caller ID, ring cadence, '
            'hotline '
            f'and features; each port keeps its extension, user, password, name and additional accounts.</p>'
            f'<form method="post" action="/ports/copy" class="row">{csrf_field(csrf)}<label>From '
            f'<select name="from">{options}</select></label><span>to</span>{targets}'
            f'<button type="submit">Copy</button></form></section>'
            f'<section><h2>Import and export</h2><p><a href="/ports.csv" download>Export ports as CSV</a> '
            f'(passwords and additional accounts are not in the file; an empty password in an import keeps '
            f'the port\'s, and an import leaves each port\'s accounts as they are).</p>'
            f'<form method="post" action="/ports/import" enctype="multipart/form-data" class="row">'
            f'{csrf_field(csrf)}<input type="file" name="file" accept=".csv,text/csv" required>'
            f'<button type="submit">Import CSV</button></form></section>')
    return _html(page("Ports", body, csrf=csrf, active="/ports", flash=flash), status=status)


def _port_index(request: web.Request, allow_new: bool) -> int:
    st = state(request)
    try:
        index = int(request.match_info["n"]) - 1
    except ValueError:
        raise web.HTTPNotFound() from None
    limit = min(st.gateway.board.ports, len(st.gateway.config.ports) + (1 if allow_new else 0))
    if not 0 <= index < limit:
        raise web.HTTPNotFound(text=f"no port {index + 1} to edit")
    return index


def _choices(doc: dict[str, Any], section: str) -> dict[str, tuple[str, ...]]:
    """Allowed items of the section's list fields that name keys of a top-level mapping."""
    return {f.name: tuple(doc.get(f.choices_from, {})) for f in section_fields(section) if f.choices_from}


Account = tuple[int, dict[str, Any], dict[str, str], list[str]]
"""An account form being re-shown after a refused save: (index, typed values, field errors, others)."""


def _port_page(request: web.Request, index: int, values: dict[str, Any], errors: dict[str, str],
               other: list[str], flash: str = "", status: int = 200,
               account: Account | None = None) -> web.Response:
    doc = state(request).editor.document()
    top = errors_block(other if other or not errors else ["see the marked fields"])
    features = values.get("features", {})
    feature_errors = {k.partition(".")[2]: v for k, v in errors.items() if k.startswith("features.")}
    feature_fields = fields_html(section_fields("ports.features"), features, feature_errors,
                                 prefix="features.", choices=_choices(doc, "ports.features"))
    body = (f'<p class="intro">What this phone is at the PBX, and how its line behaves. Settings left empty '
            f'use the <a href="/regional">regional</a> defaults.</p>{top}'
            f'<form method="post" action="/ports/{index + 1}" novalidate>{csrf_field(_csrf(request))}'
            f'{fields_html(section_fields("ports"), values, errors)}'
            f'<fieldset class="group" id="features"><legend>Features</legend><p class="help">What the phone '
            f'starts with; it changes forwarding and do not disturb itself by '
            f'<a href="/star-codes">star code</a>, and what it programmed wins from then on. Restriction '
            f'classes are defined on the same page.</p>'
            f'{feature_fields}</fieldset>'
            f'<button type="submit">Save and apply</button></form>'
            f'{_accounts_html(request, index, doc, account)}<p><a href="/ports">All ports</a></p>')
    html = page(f"Port {index + 1}", body, csrf=_csrf(request), active="/ports", flash=flash)
    return _html(html, status=status)


def _accounts_html(request: web.Request, index: int, doc: dict[str, Any], account: Account | None) -> str:
    """One form per extra account (save, remove) and one to add an account."""
    intro = ('<p class="help">Further SIP accounts on this phone, e.g. a business line: each registers on '
             'its own, its calls ring with its own cadence, and numbers dialled after its prefix or its star '
             'code go out on it.</p>')
    if index >= len(doc["ports"]):
        return (f'<section id="accounts"><h2>Additional accounts</h2>{intro}<p class="muted">Save the port '
                f'first, then add accounts.</p></section>')
    csrf, n = csrf_field(_csrf(request)), index + 1
    saved = doc["ports"][index].get("accounts", [])
    forms = []
    for k in range(len(saved) + 1):
        values: dict[str, Any] = saved[k] if k < len(saved) else {}
        errors: dict[str, str] = {}
        other: list[str] = []
        if account is not None and account[0] == k:
            _, values, errors, other = account
        fields = fields_html(section_fields("ports.accounts"), values, errors, id_prefix=f"a{k + 1}-")
        problems = errors_block(other if other or not errors else ["see the marked fields"])
        if k < len(saved):
            forms.append(f'<form method="post" action="/ports/{n}/accounts/{k + 1}" id="account-{k + 1}" '
                         f'novalidate><fieldset class="group"><legend>Account {k + 1}: '
                         f'{esc(saved[k].get("extension", ""))}</legend>{csrf}{problems}{fields}'
                         f'<div class="row"><button type="submit">Save account</button><button '
                         f'type="submit" class="danger" formaction="/ports/{n}/accounts/{k + 1}/remove">'
                         f'Remove</button></div>'
                         f'</fieldset></form>')
        else:
            opened = " open" if account is not None and account[0] == k else ""
            forms.append(f'<details id="account-new"{opened}><summary>Add an account</summary><form '
                         f'method="post" action="/ports/{n}/accounts/new" novalidate>{csrf}{problems}{fields}'
                         f'<button type="submit">Add account</button></form></details>')
    return f'<section id="accounts"><h2>Additional accounts</h2>{intro}{"".join(forms)}</section>'


@routes.get("/ports/{n:[0-9]+}")
async def port_page(request: web.Request) -> web.StreamResponse:
    index = _port_index(request, allow_new=True)
    ports = state(request).editor.document()["ports"]
    return _port_page(request, index, ports[index] if index < len(ports) else {}, {}, [])


@routes.post("/ports/{n:[0-9]+}")
async def port_save(request: web.Request) -> web.StreamResponse:
    st = state(request)
    index = _port_index(request, allow_new=True)
    doc = st.editor.document()
    ports = list(doc["ports"])
    values = from_form("ports", await _form(request), ports[index] if index < len(ports) else {})
    if index < len(ports):
        ports[index] = values
    else:
        ports.append(values)
    try:
        _config, applied = await st.editor.commit({**doc, "ports": ports})
    except ConfigError as exc:
        errors, other = errors_by_field(exc.errors, f"ports[{index}]", (c for c, _ in flat_fields("ports")))
        return _port_page(request, index, values, errors, other, status=422)
    saved = st.editor.document()["ports"][index]
    return _port_page(request, index, saved, {}, [], flash=applied_text(applied))


def _account_index(request: web.Request, index: int, doc: dict[str, Any]) -> int:
    accounts = doc["ports"][index].get("accounts", [])
    text = request.match_info.get("k", "new")
    k = len(accounts) if text == "new" else int(text) - 1
    if not 0 <= k <= len(accounts) or (text != "new" and k == len(accounts)):
        raise web.HTTPNotFound(text=f"port {index + 1} has no account {text}")
    return k


@routes.post("/ports/{n:[0-9]+}/accounts/{k:[0-9]+}")
@routes.post("/ports/{n:[0-9]+}/accounts/new")
async def account_save(request: web.Request) -> web.StreamResponse:
    """Add or change one extra account of a port; an empty password keeps the account's own."""
    st = state(request)
    index = _port_index(request, allow_new=False)
    doc = st.editor.document()
    k = _account_index(request, index, doc)
    ports = list(doc["ports"])
    accounts = list(ports[index].get("accounts", []))
    values = from_form("ports.accounts", await _form(request), accounts[k] if k < len(accounts) else {})
    accounts[k:k + 1] = [values]
    ports[index] = {**ports[index], "accounts": accounts}
    try:
        _config, applied = await st.editor.commit({**doc, "ports": ports})
    except ConfigError as exc:
        errors, other = errors_by_field(exc.errors, f"ports[{index}].accounts[{k}]",
                                        (f.name for f in section_fields("ports.accounts")))
        return _port_page(request, index, doc["ports"][index], {}, [], status=422,
                          account=(k, values, errors, other))
    saved = st.editor.document()["ports"][index]
    return _port_page(request, index, saved, {}, [], flash=applied_text(applied))


@routes.post("/ports/{n:[0-9]+}/accounts/{k:[0-9]+}/remove")
async def account_remove(request: web.Request) -> web.StreamResponse:
    st = state(request)
    index = _port_index(request, allow_new=False)
    doc = st.editor.document()
    k = _account_index(request, index, doc)
    ports = list(doc["ports"])
    ports[index] = {**ports[index], "accounts": [a for n, a in enumerate(ports[index]["accounts"]) if n != k]}
    try:
        _config, applied = await st.editor.commit({**doc, "ports": ports})
    except ConfigError as exc:
        return _port_page(request, index, doc["ports"][index], {}, [str(e) for e in exc.errors], status=422)
    return _port_page(request, index, st.editor.document()["ports"][index], {}, [],
                      flash=f"Account removed. {applied_text(applied)}")


# -- star codes and restriction classes -------------------------------------------------------------

def _star_codes_page(request: web.Request, codes: dict[str, Any], classes: list[tuple[str, str]],
                     errors: dict[str, str], other: list[str], flash: str = "",
                     status: int = 200) -> web.Response:
    config = state(request).gateway.config
    top = errors_block(other if other or not errors else ["see the marked fields"])
    code_errors = {k.partition(".")[2]: v for k, v in errors.items() if k.startswith("star_codes.")}
    codes_html = fields_html(mapping_sections()["star_codes"], codes, code_errors, prefix="star_codes.")
    rows = []
    for n, (name, plan) in enumerate([*classes, ("", ""), ("", "")]):
        error = errors.get(f"restriction_classes.{name}") if name else None
        users = [str(p + 1) for p, port in enumerate(config.ports) if name and name in port.features.restrict]
        ident = f"f-class-{n}"
        aria = f' aria-invalid="true" aria-describedby="{ident}-error"' if error else ""
        err = f'<small class="field-error" id="{ident}-error">{esc(error)}</small>' if error else ""
        remove = (f'<label class="inline"><input type="checkbox" name="class-remove-{n}" value="on"> remove'
                  f'</label>' if name else "")
        rows.append([f'<input name="class-name-{n}" id="{ident}-name" value="{esc(name)}" aria-label="Class '
                     f'name" placeholder="e.g. international"{aria}>',
                     f'<input name="class-plan-{n}" id="{ident}" value="{esc(plan)}" aria-label="Digit map"'
                     f' placeholder="e.g. 011x."{aria}>{err}', esc(", ".join(users) or "—"), remove])
    body = (f'<p class="intro">The codes a phone dials for call features (North American NANPA codes by '
            f'default), and the classes of numbers a port can be barred from calling (tick them on the '
            f'port\'s page).</p>{top}<form method="post" action="/star-codes" novalidate>'
            f'{csrf_field(_csrf(request))}<fieldset class="group" id="star-codes"><legend>Star codes</legend>'
            f'<p class="help">{esc(mapping_doc("star_codes"))} Each is * or # and 1-4 digits; no code '
            f'may be the start of another.</p><div class="grid">{codes_html}</div></fieldset>'
            f'<fieldset class="group" id="restriction-classes"><legend>Restriction classes</legend>'
            f'<p class="help">{esc(mapping_doc("restriction_classes"))} Patterns use the dial-plan syntax; '
            f'a class still ticked on a port cannot be removed.</p>'
            f'{table(["Name", "Numbers (digit map)", "Ports barred", ""], rows)}</fieldset>'
            f'<button type="submit">Save and apply</button></form>')
    return _html(page("Star codes and restrictions", body, csrf=_csrf(request), active="/star-codes",
                      flash=flash), status=status)


@routes.get("/star-codes")
async def star_codes_page(request: web.Request) -> web.StreamResponse:
    doc = state(request).editor.document()
    classes = list(doc.get("restriction_classes", {}).items())
    return _star_codes_page(request, doc["star_codes"], classes, {}, [])


@routes.post("/star-codes")
async def star_codes_save(request: web.Request) -> web.StreamResponse:
    st = state(request)
    doc = st.editor.document()
    form = await _form(request)
    codes = mapping_from_form("star_codes", form, doc["star_codes"])
    rows = class_rows(form)
    try:
        classes = classes_from_form(form)
        _config, applied = await st.editor.commit({**doc, "star_codes": codes,
                                                   "restriction_classes": classes})
    except ConfigError as exc:
        shown = [f"star_codes.{f.name}" for f in mapping_sections()["star_codes"]] + \
            [f"restriction_classes.{name}" for name, _ in rows if name]
        errors, other = errors_by_field(exc.errors, "", shown)
        return _star_codes_page(request, codes, rows, errors, other, status=422)
    saved = st.editor.document()
    return _star_codes_page(request, saved["star_codes"], list(saved.get("restriction_classes", {}).items()),
                            {}, [], flash=applied_text(applied))


@routes.post("/ports/copy")
async def ports_copy(request: web.Request) -> web.StreamResponse:
    st = state(request)
    data = await request.post()
    doc = st.editor.document()
    try:
        source = int(str(data.get("from", ""))) - 1
        targets = [int(str(v)) - 1 for v in data.getall("to", [])]
    except ValueError:
        return _ports_page(request, errors=["choose a port to copy from and ports to copy to"], status=422)
    if not 0 <= source < len(doc["ports"]) or not targets:
        return _ports_page(request, errors=["choose a port to copy from and ports to copy to"], status=422)
    try:
        _config, applied = await st.editor.commit(copy_port(doc, source, targets))
    except ConfigError as exc:
        return _ports_page(request, errors=[str(e) for e in exc.errors], status=422)
    return _ports_page(request, flash=applied_text(applied))


@routes.get("/ports.csv")
async def ports_export(request: web.Request) -> web.StreamResponse:
    return web.Response(text=ports_csv(state(request).editor.document()), content_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="hookflash-ports.csv"'})


@routes.post("/ports/import")
async def ports_import(request: web.Request) -> web.StreamResponse:
    st = state(request)
    upload = (await request.post()).get("file")
    if not isinstance(upload, web.FileField):
        return _ports_page(request, errors=["choose a CSV file"], status=422)
    try:
        text = upload.file.read().decode("utf-8-sig")
        _config, applied = await st.editor.commit(import_ports_csv(st.editor.document(), text))
    except UnicodeDecodeError:
        return _ports_page(request, errors=["the file is not UTF-8 text"], status=422)
    except ConfigError as exc:
        return _ports_page(request, errors=[str(e) for e in exc.errors], status=422)
    return _ports_page(request, flash=f"Imported. {applied_text(applied)}")


# -- call history --------------------------------------------------------------------------------------

@routes.get("/diagnostics")
async def diagnostics_page(request: web.Request) -> web.StreamResponse:
    """One port at a time (`?port=N`): the virtual handset, the line scope, the call-quality graphs
    and the ring/tone/DTMF tests (panels in web/static/handset.js and diagnostics.js)."""
    ports = state(request).gateway.board.ports
    try:
        n = int(request.query.get("port", "1"))
    except ValueError:
        n = 0
    if not 1 <= n <= ports:
        raise web.HTTPNotFound(text=f"no port {request.query.get('port')!r}: this board has ports 1-{ports}")
    picker = "".join(f'<a href="/diagnostics?port={i}"{" class=active" if i == n else ""}>Port {i}</a>'
                     for i in range(1, ports + 1))
    body = (f'<nav class="tabs" aria-label="Port">{picker}</nav>'
            f'<div class="panels"><section><h2>Handset</h2><div id="handset" data-handset-port="{n}"></div>'
            f'</section><section><h2>Tests</h2><div id="tests" data-diagnostics-port="{n}"></div></section>'
            f'<section class="wide"><h2>Line audio</h2><canvas id="scope" class="graph" '
            f'data-scope-port="{n}"></canvas></section><section class="wide"><h2>Call quality</h2>'
            f'<canvas id="callstats" class="graph" data-callstats-port="{n}"></canvas></section></div>')
    return _html(page(f"Diagnostics · port {n}", body, csrf=_csrf(request), active="/diagnostics",
                      scripts=["app.js", "handset.js", "diagnostics.js"]))


DIRECTION_LABELS = {"in": "incoming", "out": "outgoing", "local": "between ports"}
"""The history's `direction` values as the filter names them."""


@routes.get("/history")
async def history_page(request: web.Request) -> web.StreamResponse:
    st = state(request)
    query = history.Query.from_request(request, st.gateway.board.ports)
    records = history.find(st.gateway, query)
    rows = [[esc(datetime.datetime.fromtimestamp(r.start).strftime("%Y-%m-%d %H:%M:%S")), str(r.port + 1),
             esc(r.direction), esc(r.caller), esc(r.callee),
             esc(f"{r.duration:.0f} s" if r.answer else "unanswered"),
             esc(r.cause), esc(f"{r.stats.mos:.1f}" if r.stats and r.stats.mos is not None else "")]
            for r in records]
    port_opts = "".join(f'<option value="{n}"{" selected" if query.port == n - 1 else ""}>Port {n}</option>'
                        for n in range(1, st.gateway.board.ports + 1))
    dir_opts = "".join(f'<option value="{d}"{" selected" if query.direction == d else ""}>{label}</option>'
                       for d, label in DIRECTION_LABELS.items())
    filtered = query.search is not None or query.port is not None or query.direction is not None
    empty = "No calls match." if filtered else \
        "No calls yet. Every call a port makes or takes appears here, with its talk time and quality (MOS)."
    body = (f'<form method="get" action="/history" class="row filters"><input type="search" name="search" '
            f'placeholder="Number contains" value="{esc(query.search or "")}"><select name="port">'
            f'<option value="">All ports</option>{port_opts}</select><select name="direction"><option '
            'value="">'
            f'All directions</option>{dir_opts}</select><button type="submit">Filter</button>'
            f'<a href="/history.csv?{esc(request.query_string)}" download>CSV export</a></form>'
            + (table(["Start", "Port", "Direction", "From", "To", "Talk time", "End", "MOS"], rows)
               if rows else f'<p class="muted">{empty}</p>'))
    return _html(page("Call history", body, csrf=_csrf(request), active="/history"))


@routes.get("/history.csv")
async def history_csv_page(request: web.Request) -> web.StreamResponse:
    return history.csv_response(request)


# -- system --------------------------------------------------------------------------------------------

def _system_page(request: web.Request, *, flash: str = "", errors: list[str] | None = None,
                 new_token: str = "", status: int = 200) -> web.Response:
    st = state(request)
    csrf = _csrf(request)
    tokens = st.auth.tokens()
    token_rows = [[esc(t.name), esc(_when(t.created)), esc(_when(t.used) if t.used else "never"),
                   f'<form method="post" action="/system/tokens/{t.id}/revoke">{csrf_field(csrf)}'
                   f'<button type="submit" class="danger">Revoke</button></form>'] for t in tokens]
    shown = (f'<div class="secret-once" role="alert"><p>Copy this token now; it is not shown again:</p>'
             f'<code id="new-token">{esc(new_token)}</code></div>' if new_token else "")
    logs = "\n".join(f"{_when(t)} {level:7} {text}" for t, level, text in list(st.logs.lines)[-200:])
    body = (f'{errors_block(errors or [])}'
            '<section><h2>Backup and restore</h2><p><a href="/system/backup" download>Download the '
            'configuration'
            f'</a> (a TOML file; it contains the SIP passwords: keep it safe).</p>'
            f'<form method="post" action="/system/restore" enctype="multipart/form-data" class="row">'
            f'{csrf_field(csrf)}<input type="file" name="file" accept=".toml" required>'
            f'<button type="submit">Restore</button></form><p class="help">A restored file is checked first; '
            f'nothing changes unless all of it is valid.</p></section>'
            f'<section><h2>Restart</h2><form method="post" action="/system/restart">{csrf_field(csrf)}'
            '<button type="submit" class="danger">Restart the gateway</button></form><p class="help">Ends '
            'every call '
            f'and re-reads the configuration file.</p></section>'
            f'<section><h2>HTTPS certificate</h2><p class="help">{esc(_cert_text(st))}</p>'
            f'<form method="post" action="/system/certificate" enctype="multipart/form-data" class="row">'
            f'{csrf_field(csrf)}<label>Certificate (PEM) <input type="file" name="cert" required></label>'
            f'<label>Private key (PEM) <input type="file" name="key" required></label>'
            f'<button type="submit">Upload</button></form></section>'
            '<section><h2>API tokens</h2><p class="help">For scripts: send <code>Authorization: Bearer '
            'TOKEN</code>'
            f' to <code>/api/v1/...</code> (<a href="/api/v1/openapi.json">OpenAPI document</a>).</p>{shown}'
            + (table(["Name", "Created", "Last used", ""], token_rows) if token_rows else "")
            + f'<form method="post" action="/system/tokens" class="row">{csrf_field(csrf)}<input name="name" '
            'placeholder="What it is for" maxlength="64" required><button type="submit">Create '
            'token</button>'
            f'</form></section>'
            f'<section><h2>Admin password</h2><form method="post" action="/system/password" class="narrow">'
            f'{csrf_field(csrf)}<div class="field"><label for="current">Current password</label><input '
            f'type="password" id="current" name="current" autocomplete="current-password" required></div>'
            '<div class="field"><label for="new">New password</label><input type="password" id="new" '
            'name="new" '
            f'autocomplete="new-password" minlength="8" required></div><button type="submit">Change password'
            f'</button></form></section>'
            f'<section><h2>Recent log</h2><pre class="log">{esc(logs) or "(empty)"}</pre></section>')
    return _html(page("System", body, csrf=csrf, active="/system", flash=flash), status=status)


def _cert_text(st: WebState) -> str:
    web_cfg = st.gateway.config.web
    if not web_cfg.uses_https:
        return (f"The page is served over plain HTTP on {web_cfg.listen} (loopback, or https = \"off\"). "
                "A certificate uploaded here is used once HTTPS is on.")
    which = f"your certificate {web_cfg.cert_file}" if web_cfg.cert_file else \
        "a self-signed certificate this device made (browsers warn once)"
    return f"HTTPS with {which}. Upload your own certificate and key to replace it (applies at restart)."


@routes.post("/system/certificate")
async def certificate(request: web.Request) -> web.StreamResponse:
    st = state(request)
    data = await request.post()
    cert, key = data.get("cert"), data.get("key")
    if not isinstance(cert, web.FileField) or not isinstance(key, web.FileField):
        return _system_page(request, errors=["choose the certificate and the key files"], status=422)
    data_dir = Path(st.gateway.config.system.data_dir)
    try:
        cert_path, key_path = await asyncio.to_thread(install_owner_certificate, data_dir, cert.file.read(),
                                                      key.file.read())
    except CertificateError as exc:
        return _system_page(request, errors=[str(exc)], status=422)
    doc = st.editor.document()
    doc["web"] = {**doc["web"], "cert_file": str(cert_path), "key_file": str(key_path)}
    try:
        _config, applied = await st.editor.commit(doc)
    except ConfigError as exc:
        return _system_page(request, errors=[str(e) for e in exc.errors], status=422)
    return _system_page(request, flash=f"Certificate installed. {applied_text(applied)}")


def _when(t: float) -> str:
    return datetime.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


@routes.get("/system")
async def system_page(request: web.Request) -> web.StreamResponse:
    return _system_page(request)


@routes.get("/system/backup")
async def backup(request: web.Request) -> web.StreamResponse:
    text = dumps(state(request).editor.document())
    return web.Response(text=text, content_type="application/toml",
                        headers={"Content-Disposition": 'attachment; filename="hookflash.toml"'})


@routes.post("/system/restore")
async def restore(request: web.Request) -> web.StreamResponse:
    st = state(request)
    upload = (await request.post()).get("file")
    if not isinstance(upload, web.FileField):
        return _system_page(request, errors=["choose a configuration file"], status=422)
    try:
        doc = restore_document(upload.file.read())
        _config, applied = await st.editor.commit(doc)
    except ConfigError as exc:
        return _system_page(request, errors=[str(e) for e in exc.errors], status=422)
    return _system_page(request, flash=f"Restored. {applied_text(applied)}")


def restore_document(data: bytes) -> dict[str, Any]:
    """A backup file's document, or ConfigError (not UTF-8, not TOML, or not a valid config)."""
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([FieldError("", f"not a TOML configuration file: {exc}")]) from exc
    return to_dict(parse_config(doc))


@routes.post("/system/restart")
async def restart(request: web.Request) -> web.StreamResponse:
    state(request).restart()
    body = '<p>The gateway is restarting. <a href="/">Back to the status page</a> in a few seconds.</p>'
    return _html(page("Restarting", body, csrf=None))


@routes.post("/system/tokens")
async def token_create(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    token, clear = state(request).auth.create_token(form.get("name", ""))
    return _system_page(request, flash=f"Token '{token.name}' created.", new_token=clear)


@routes.post("/system/tokens/{id:[0-9]+}/revoke")
async def token_revoke(request: web.Request) -> web.StreamResponse:
    found = state(request).auth.revoke_token(int(request.match_info["id"]))
    return _system_page(request, flash="Token revoked." if found else "No such token.")


@routes.post("/system/password")
async def password_change(request: web.Request) -> web.StreamResponse:
    st = state(request)
    form = await _form(request)
    wait = st.limiter.retry_after(request.remote or "unknown", time.monotonic())
    if wait > 0:
        return _system_page(request, errors=[f"too many wrong passwords: try again in {wait:.0f} s"],
                            status=429)
    async with st.hashing:
        ok = await st.auth.check_password_async(form.get("current", ""))
        if not ok:
            st.limiter.failed(request.remote or "unknown", time.monotonic())
            return _system_page(request, errors=["the current password is wrong"], status=422)
        try:
            await st.auth.set_password_async(form.get("new", ""))
        except PasswordError as exc:
            return _system_page(request, errors=[f"the new password {exc}"], status=422)
    return await _login_response(request)
