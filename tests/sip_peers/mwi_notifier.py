"""A small message-summary notifier (RFC 3842) on a loopback UDP socket, for end-to-end tests: it
accepts SUBSCRIBEs that Kamailio routes to it, answers 200 and sends in-dialog NOTIFYs back through
Kamailio's Record-Route, like a voicemail server would. Built on our own SIP message codec; real
sockets, no mocks. Debian's Kamailio has no presence_mwi module, so this stands in for the mailbox.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

from firmware.sip.message import Headers, Request, Response, parse_message


@dataclass
class _Subscriber:
    request: Request
    tag: str
    cseq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


class MwiNotifier(asyncio.DatagramProtocol):
    """`await start()`, then `notify(waiting)` to every subscriber; `subscribes` counts SUBSCRIBEs."""

    def __init__(self, expires: int = 600) -> None:
        self.expires = expires
        self.subscribes: list[Request] = []
        self.notify_answers: list[int] = []
        self._subscribers: dict[str, _Subscriber] = {}
        self._transport: asyncio.DatagramTransport | None = None
        self._branches = itertools.count(1)
        self.subscribed = asyncio.Event()

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
        self._transport = transport
        return int(transport.get_extra_info("sockname")[1])

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        message = parse_message(data)
        if isinstance(message, Response):
            if message.cseq.method == "NOTIFY":
                self.notify_answers.append(message.status)
            return
        if message.method != "SUBSCRIBE":
            return
        self.subscribes.append(message)
        tag = f"ntf{len(self._subscribers)}"
        sub = self._subscribers.setdefault(message.call_id, _Subscriber(message, tag))
        expires = int(message.headers.get("Expires") or self.expires)
        headers = Headers()
        for name in ("Via", "Record-Route"):
            for value in message.headers.lines(name):
                headers.add(name, value)
        headers.add("From", message.headers.lines("From")[0])
        to = message.headers.lines("To")[0]
        headers.add("To", to if ";tag=" in to else f"{to};tag={sub.tag}")
        headers.add("Call-ID", message.call_id)
        headers.add("CSeq", message.headers.lines("CSeq")[0])
        headers.add("Contact", f"<sip:mwi@127.0.0.1:{self._port}>")
        headers.add("Expires", str(min(expires, self.expires)))
        self._send(Response(200, "OK", headers), addr)
        if expires == 0:
            self._subscribers.pop(message.call_id, None)
        else:
            self.subscribed.set()

    def notify(self, waiting: bool, proxy: tuple[str, int]) -> None:
        """NOTIFY every subscriber through `proxy` (the Record-Route set of its SUBSCRIBE)."""
        flag = "yes" if waiting else "no"
        body = f"Messages-Waiting: {flag}\r\nVoice-Message: {int(waiting)}/0\r\n".encode()
        for sub in self._subscribers.values():
            request = sub.request
            headers = Headers()
            headers.add("Via", f"SIP/2.0/UDP 127.0.0.1:{self._port};branch=z9hG4bKntf{next(self._branches)}")
            headers.add("Max-Forwards", "70")
            for route in request.headers.lines("Record-Route"):
                headers.add("Route", route)
            to = request.headers.lines("To")[0]
            headers.add("From", to if ";tag=" in to else f"{to};tag={sub.tag}")
            headers.add("To", request.headers.lines("From")[0])
            headers.add("Call-ID", request.call_id)
            headers.add("CSeq", f"{next(sub.cseq)} NOTIFY")
            headers.add("Contact", f"<sip:mwi@127.0.0.1:{self._port}>")
            headers.add("Event", "message-summary")
            headers.add("Subscription-State", f"active;expires={self.expires}")
            headers.add("Content-Type", "application/simple-message-summary")
            contact = request.contacts[0].uri
            self._send(Request("NOTIFY", contact, headers, body), proxy)  # type: ignore[arg-type]

    @property
    def _port(self) -> int:
        assert self._transport is not None
        return int(self._transport.get_extra_info("sockname")[1])

    def _send(self, message: Request | Response, addr: tuple[str, int]) -> None:
        assert self._transport is not None
        self._transport.sendto(bytes(message), addr)
