"""Server-rendered HTML: the page frame and form fields. Every value goes through `esc` (html.escape);
there is no inline script or style (the Content-Security-Policy forbids them), so all behaviour is in
web/static/*.js and all looks in web/static/style.css."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import Any

from web.configedit import form_value
from web.fields import MASK, Field

NAV = [("/", "Status"), ("/ports", "Ports"), ("/sip", "SIP server"), ("/regional", "Regional"),
       ("/history", "Call history"), ("/diagnostics", "Diagnostics"), ("/system", "System")]
"""The navigation bar."""

LABELS = {"callerid": "Caller ID standard", "auth_user": "Authentication user", "dns_servers": "DNS servers",
          "tls_ca_file": "TLS CA file", "tls_verify": "Verify the server's TLS certificate",
          "accept_only_from_proxy": "Accept requests only from the registrar/proxy",
          "expires": "Registration expiry (s)", "local_port": "Local SIP port",
          "polarity_reversal": "Polarity reversal on answer", "data_dir": "Data directory"}


def esc(value: object) -> str:
    return escape(str(value), quote=True)


def label(name: str) -> str:
    return LABELS.get(name, name.replace("_", " ").capitalize())


def page(title: str, body: str, *, csrf: str | None, active: str = "", flash: str = "",
         scripts: Iterable[str] = ()) -> str:
    """A whole page; `csrf` None means a logged-out page (no navigation)."""
    nav = ""
    if csrf is not None:
        links = "".join(f'<a href="{href}"{" class=active" if href == active else ""}>{esc(text)}</a>'
                        for href, text in NAV)
        nav = (f'<nav>{links}<form method="post" action="/logout" class="logout">'
               f'{csrf_field(csrf)}<button type="submit" class="link">Log out</button></form></nav>')
    note = f'<p class="flash" role="status">{esc(flash)}</p>' if flash else ""
    tags = "".join(f'<script src="/static/{esc(s)}" defer></script>' for s in scripts)
    meta = f'<meta name="csrf-token" content="{esc(csrf)}">' if csrf else ""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">{meta}'
            f'<title>{esc(title)} · Hookflash</title><link rel="stylesheet" href="/static/style.css">{tags}'
            f'</head><body><header><a class="brand" href="/">Hookflash</a>{nav}</header>'
            f'<main><h1>{esc(title)}</h1>{note}{body}</main></body></html>')


def csrf_field(token: str) -> str:
    return f'<input type="hidden" name="csrf" value="{esc(token)}">'


def errors_block(lines: list[str]) -> str:
    if not lines:
        return ""
    items = "".join(f"<li>{esc(line)}</li>" for line in lines)
    return f'<div class="errors" role="alert"><p>Not saved:</p><ul>{items}</ul></div>'


def field_html(f: Field, value: Any, error: str | None, *, prefix: str = "") -> str:
    """One labelled input; write-only fields show whether they are set, never their value."""
    name = f.name
    ident = f"f-{prefix}{name}"
    help_text = f'<small class="help">{esc(f.doc)}</small>' if f.doc else ""
    err = f'<small class="field-error" id="{ident}-error">{esc(error)}</small>' if error else ""
    aria = f' aria-invalid="true" aria-describedby="{ident}-error"' if error else ""
    if f.kind == "flag":
        checked = " checked" if value else ""
        return (f'<div class="field flag{" invalid" if error else ""}"><label><input type="checkbox" '
                f'name="{esc(name)}" id="{ident}"{checked}{aria}> '
                f'{esc(label(name))}</label>{help_text}{err}</div>')
    shown = form_value(f.kind, value)
    if f.choices:
        options = "".join(f'<option value="{esc(c)}"{" selected" if c == shown else ""}>'
                          f'{esc(c or "(default)")}</option>' for c in f.choices)
        control = f'<select name="{esc(name)}" id="{ident}"{aria}>{options}</select>'
    elif f.kind == "secret":
        hint = "set; leave empty to keep it" if value else "not set"
        control = (f'<input type="password" name="{esc(name)}" id="{ident}" value="" '
                   'autocomplete="new-password"'
                   f' placeholder="{esc(MASK if value else "")}"{aria}><small '
                   f'class="help">{esc(hint)}</small>')
    else:
        kind = "number" if f.kind == "integer" and not error else "text"
        control = f'<input type="{kind}" name="{esc(name)}" id="{ident}" value="{esc(shown)}"{aria}>'
    return (f'<div class="field{" invalid" if error else ""}"><label for="{ident}">{esc(label(name))}</label>'
            f'{control}{help_text}{err}</div>')


def fields_html(fields: Iterable[Field], values: dict[str, Any], errors: dict[str, str],
                skip: Iterable[str] = ()) -> str:
    skipped = set(skip)
    return "".join(field_html(f, values.get(f.name, f.default), errors.get(f.name))
                   for f in fields if f.name not in skipped and f.kind != "pins")


def table(headers: Iterable[str], rows: Iterable[Iterable[str]], *, attrs: str = "") -> str:
    """A table of already-escaped cells."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table{attrs}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
