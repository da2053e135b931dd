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
       ("/star-codes", "Star codes"), ("/history", "Call history"), ("/diagnostics", "Diagnostics"),
       ("/system", "System")]
"""The navigation bar."""

LABELS = {"callerid": "Caller ID standard", "auth_user": "Authentication user", "dns_servers": "DNS servers",
          "tls_ca_file": "TLS CA file", "tls_verify": "Verify the server's TLS certificate",
          "accept_only_from_proxy": "Accept requests only from the registrar/proxy",
          "expires": "Registration expiry (s)", "local_port": "Local SIP port",
          "polarity_reversal": "Polarity reversal on answer", "data_dir": "Data directory",
          "mwi_subscribe": "Subscribe to message waiting (RFC 3842)", "dnd": "Do not disturb",
          "forward_no_answer_s": "Forward on no answer after (s)", "warm_line_s": "Warm line after (s)",
          "restrict": "May not call", "disabled": "Switched off", "anonymous": "Every call anonymous",
          "prefix": "Dialling prefix", "dnd_on": "Do not disturb on", "dnd_off": "Do not disturb off",
          "show_id_call": "Show caller ID (one call)", "anonymous_call": "Anonymous (one call)",
          "rx_gain_db": "Earpiece gain (dB)", "tx_gain_db": "Mouthpiece gain (dB)",
          "star_code": "Star code for the next call"}


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


def field_html(f: Field, value: Any, error: str | None, *, prefix: str = "", id_prefix: str = "",
               choices: tuple[str, ...] | None = None) -> str:
    """One labelled input named `prefix` + the field's name (``features.dnd``); its id is
    ``f-<id_prefix><name>`` with dots as dashes. Write-only fields show whether they are set, never
    their value. A list with `choices` (or the field's own) is a set of checkboxes."""
    name = prefix + f.name
    ident = f"f-{id_prefix}{name.replace('.', '-')}"
    help_text = f'<small class="help">{esc(f.doc)}</small>' if f.doc else ""
    err = f'<small class="field-error" id="{ident}-error">{esc(error)}</small>' if error else ""
    aria = f' aria-invalid="true" aria-describedby="{ident}-error"' if error else ""
    allowed = f.choices if choices is None else choices
    if f.kind == "list" and (allowed or f.choices_from):
        return _checkboxes(f, name, ident, value, allowed, help_text, err, aria)
    if f.kind == "flag":
        checked = " checked" if value else ""
        return (f'<div class="field flag{" invalid" if error else ""}"><label><input type="checkbox" '
                f'name="{esc(name)}" id="{ident}"{checked}{aria}> '
                f'{esc(label(f.name))}</label>{help_text}{err}</div>')
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
        kind = "number" if f.kind in ("integer", "number") and not error else "text"
        step = ' step="any"' if f.kind == "number" and not error else ""
        control = f'<input type="{kind}"{step} name="{esc(name)}" id="{ident}" value="{esc(shown)}"{aria}>'
    return (f'<div class="field{" invalid" if error else ""}"><label for="{ident}">'
            f'{esc(label(f.name))}</label>{control}{help_text}{err}</div>')


def _checkboxes(f: Field, name: str, ident: str, value: Any, options: tuple[str, ...], help_text: str,
                err: str, aria: str) -> str:
    """A list field as one checkbox per allowed item. The hidden empty input makes the field present
    when nothing is ticked (an unticked box sends nothing). A selected item that is no longer
    allowed (a class since removed) stays listed, ticked, so the form can say what is wrong with it."""
    chosen = [str(v) for v in (value or ())]
    items = list(dict.fromkeys([*options, *chosen]))
    boxes = "".join(f'<label class="inline"><input type="checkbox" name="{esc(name)}" value="{esc(item)}" '
                    f'id="{ident}-{n}"{" checked" if item in chosen else ""}{aria}> {esc(item)}</label>'
                    for n, item in enumerate(items))
    if not items:
        boxes = '<span class="muted">none defined</span>'
    return (f'<fieldset class="field checks{" invalid" if err else ""}" id="{ident}">'
            f'<legend>{esc(label(f.name))}</legend><input type="hidden" name="{esc(name)}" value="">'
            f'<div class="row">{boxes}</div>{help_text}{err}</fieldset>')


def fields_html(fields: Iterable[Field], values: dict[str, Any], errors: dict[str, str],
                skip: Iterable[str] = (), *, prefix: str = "", id_prefix: str = "",
                choices: dict[str, tuple[str, ...]] | None = None) -> str:
    """The fields of one section; `values` and `errors` keyed by field name without `prefix`;
    `choices` gives list fields whose allowed items come from the running config."""
    skipped = set(skip)
    return "".join(field_html(f, values.get(f.name, f.default), errors.get(f.name), prefix=prefix,
                              id_prefix=id_prefix, choices=(choices or {}).get(f.name))
                   for f in fields if f.name not in skipped and f.kind != "pins")


def table(headers: Iterable[str], rows: Iterable[Iterable[str]], *, attrs: str = "") -> str:
    """A table of already-escaped cells."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table{attrs}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
