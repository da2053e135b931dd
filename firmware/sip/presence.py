"""A port's state offered through the dialog event package (RFC 4235), notifier side, sans-IO.

Busy-lamp fields on other phones SUBSCRIBE to `Event: dialog` for the port's AOR (through the PBX).
Each subscription is answered 200 with the granted Expires and followed at once by a NOTIFY with the
full state (RFC 6665 §4.2.1.2), and by another on every change of the port's state; the document's
`version` starts at 0 and grows by one with each NOTIFY of that subscription (RFC 4235 §4.1). An
idle port has no `<dialog>` element; a call in progress has one, in state trying, proceeding, early
or confirmed, and an ended call is reported once as terminated. A refresh renews the expiry, Expires:
0 ends the subscription with a final `terminated` NOTIFY (RFC 6665 §4.2.1.4), an unrefreshed one ends
with `terminated;reason=timeout` (§4.2.2), and a 481/408 to a NOTIFY drops it (§4.2.2). The owner
moves requests and responses; nothing here touches a socket.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from typing import Literal
from xml.sax.saxutils import escape, quoteattr

from firmware.sip.dialog import Dialog
from firmware.sip.message import Request, Response, build_error_response
from firmware.sip.uri import SipUri, Uri

EVENT = "dialog"
CONTENT_TYPE = "application/dialog-info+xml"
MAX_EXPIRES = 3600
MIN_EXPIRES = 60
"""Shorter subscriptions are refused 423 with Min-Expires (RFC 6665 §4.2.1.1)."""

CallState = Literal["trying", "proceeding", "early", "confirmed", "terminated"]
Direction = Literal["initiator", "recipient"]


@dataclass(frozen=True)
class PortDialog:
    """The port's call as RFC 4235 shows it; `id` names it across NOTIFYs."""

    id: str
    state: CallState
    direction: Direction


@dataclass
class _Watcher:
    dialog: Dialog
    expires_at: float
    version: int = 0


class DialogNotifier:
    """The dialog-package subscriptions of one account (see the module docstring)."""

    def __init__(self, entity: SipUri, contact: str, *, rng: random.Random | None = None) -> None:
        self.entity = entity
        self.contact = contact
        self.current: PortDialog | None = None
        self._watchers: dict[str, _Watcher] = {}
        self._rng = rng or random.SystemRandom()
        self._out: deque[tuple[Request, Uri]] = deque()

    @property
    def watchers(self) -> int:
        return len(self._watchers)

    def owns(self, request: Request) -> bool:
        """An in-dialog request of one of our subscriptions."""
        watcher = self._watchers.get(request.call_id)
        return watcher is not None and request.to_tag == watcher.dialog.local_tag

    def subscribe(self, request: Request, tag: str, now: float) -> Response:
        """Answer a SUBSCRIBE (new or refresh); the NOTIFY it calls for is queued."""
        listed = ",".join(request.headers.lines("Accept")).split(",")
        accept = [a.strip().lower() for a in listed if a.strip()]
        if accept and CONTENT_TYPE not in accept and "*/*" not in accept:
            return _error(request, 406, "Not Acceptable", tag)
        try:
            asked = int(request.headers.get("Expires") or MAX_EXPIRES)
        except ValueError:
            return _error(request, 400, "Bad Expires", tag)
        if 0 < asked < MIN_EXPIRES:
            response = _error(request, 423, "Interval Too Brief", tag)
            response.headers.add("Min-Expires", str(MIN_EXPIRES))
            return response
        expires = min(asked, MAX_EXPIRES)
        watcher = self._watchers.get(request.call_id)
        if request.to_tag is None:
            dialog = Dialog.create_uas(request, tag, self.contact, rng=self._rng)
            watcher = _Watcher(dialog, now + expires)
        elif watcher is None or request.to_tag != watcher.dialog.local_tag:
            return _error(request, 481, "Subscription Does Not Exist", tag)
        elif (error := watcher.dialog.receive_request(request)) is not None:
            return error
        response = watcher.dialog.create_response(request, 200, "OK", now)
        response.headers.add("Contact", self.contact)
        response.headers.add("Expires", str(expires))
        watcher.expires_at = now + expires
        if expires == 0:
            self._watchers.pop(request.call_id, None)
            self._notify(watcher, "terminated;reason=timeout")
        else:
            self._watchers[request.call_id] = watcher
            self._notify(watcher, f"active;expires={expires}")
        return response

    def set_state(self, dialog: PortDialog | None, now: float) -> None:
        """The port's call changed (None: idle): NOTIFY every watcher."""
        if dialog == self.current:
            return
        self.current = dialog
        for watcher in self._watchers.values():
            self._notify(watcher, f"active;expires={max(0, round(watcher.expires_at - now))}")
        if dialog is not None and dialog.state == "terminated":
            self.current = None  # reported once; the next NOTIFY shows the port idle

    def notify_failed(self, call_id: str, status: int) -> None:
        """A NOTIFY was answered `status`: 481 or a timeout (408) means the watcher is gone."""
        if status in (408, 481):
            self._watchers.pop(call_id, None)

    def next_request(self) -> tuple[Request, Uri] | None:
        return self._out.popleft() if self._out else None

    def get_timer(self) -> float | None:
        return min((w.expires_at for w in self._watchers.values()), default=None)

    def handle_timer(self, now: float) -> None:
        for call_id, watcher in list(self._watchers.items()):
            if watcher.expires_at <= now:
                del self._watchers[call_id]
                self._notify(watcher, "terminated;reason=timeout")

    def stop(self) -> None:
        """The gateway stops: end every subscription (RFC 6665 §4.2.2, reason noresource)."""
        for watcher in self._watchers.values():
            self._notify(watcher, "terminated;reason=noresource")
        self._watchers.clear()

    def document(self, version: int) -> bytes:
        """The full-state dialog-info document (RFC 4235 §4.1)."""
        lines = ['<?xml version="1.0" encoding="UTF-8"?>',
                 f'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="{version}" '
                 f'state="full" entity={quoteattr(str(self.entity))}>']
        if (d := self.current) is not None:
            lines += [f"  <dialog id={quoteattr(d.id)} direction={quoteattr(d.direction)}>",
                      f"    <state>{escape(d.state)}</state>", "  </dialog>"]
        lines.append("</dialog-info>")
        return ("\n".join(lines) + "\n").encode()

    def _notify(self, watcher: _Watcher, subscription_state: str) -> None:
        body = self.document(watcher.version)
        watcher.version += 1
        extra = [("Event", EVENT), ("Subscription-State", subscription_state)]
        notify = watcher.dialog.create_request("NOTIFY", body, CONTENT_TYPE, extra)
        self._out.append((notify, watcher.dialog.next_hop))


def _error(request: Request, status: int, reason: str, tag: str) -> Response:
    response = build_error_response(request, status, reason, to_tag=tag)
    assert response is not None
    return response
