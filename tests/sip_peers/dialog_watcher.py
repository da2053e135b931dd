"""A busy-lamp watcher for end-to-end tests: SUBSCRIBEs to `Event: dialog` (RFC 4235) for a user
through Kamailio (answering its digest challenge as subscriber `user`), answers NOTIFYs 200 and keeps
what they said. Real UDP sockets; our own SIP codec and digest client."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from firmware.sip.auth import Credentials, DigestClient
from firmware.sip.message import Headers, Request, Response, build_error_response, parse_message
from firmware.sip.uri import parse_uri


@dataclass(frozen=True)
class Seen:
    version: int
    states: tuple[str, ...]
    subscription_state: str


class DialogWatcher(asyncio.DatagramProtocol):
    def __init__(self, user: str, password: str, proxy: tuple[str, int]) -> None:
        self.user, self.proxy = user, proxy
        self.auth = DigestClient(Credentials(user, password, None))
        self.seen: list[Seen] = []
        self.final: list[int] = []
        self.changed = asyncio.Event()
        self._transport: asyncio.DatagramTransport | None = None
        self._cseq = 0
        self._branch = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def subscribe(self, target: str, expires: int = 600, auth: list[tuple[str, str]] | None = None) -> None:
        assert self._transport is not None
        port = self._transport.get_extra_info("sockname")[1]
        host = self.proxy[0]
        self._cseq += 1
        self._branch += 1
        headers = Headers()
        headers.add("Via", f"SIP/2.0/UDP 127.0.0.1:{port};rport;branch=z9hG4bKw{self._branch}")
        headers.add("Max-Forwards", "70")
        headers.add("From", f"<sip:{self.user}@{host}>;tag=watcher")
        headers.add("To", f"<sip:{target}@{host}>")
        headers.add("Call-ID", f"watch-{target}@127.0.0.1")
        headers.add("CSeq", f"{self._cseq} SUBSCRIBE")
        headers.add("Contact", f"<sip:{self.user}@127.0.0.1:{port}>")
        headers.add("Event", "dialog")
        headers.add("Accept", "application/dialog-info+xml")
        headers.add("Expires", str(expires))
        for name, value in auth or []:
            headers.add(name, value)
        uri = parse_uri(f"sip:{target}@{host}:{self.proxy[1]}")
        self._last = Request("SUBSCRIBE", uri, headers)  # type: ignore[arg-type]
        self._transport.sendto(bytes(self._last), self.proxy)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self._transport is not None
        message = parse_message(data)
        if isinstance(message, Response):
            if message.status in (401, 407):
                name = "Proxy-Authenticate" if message.status == 407 else "WWW-Authenticate"
                answer = self.auth.handle_challenge(message.status, message.headers.lines(name), "SUBSCRIBE",
                                                    str(self._last.uri))
                self.subscribe(self._last.to.uri.user or "", int(self._last.headers.get("Expires") or 600),
                               list(answer))
            elif message.status >= 200:
                self.final.append(message.status)
                self.changed.set()
            return
        if message.method == "NOTIFY":
            body = message.body.decode()
            version = re.search(r'version="(\d+)"', body)
            self.seen.append(Seen(int(version.group(1)) if version else -1,
                                  tuple(re.findall(r"<state>(\w+)</state>", body)),
                                  message.headers.get("Subscription-State") or ""))
            self.changed.set()
        response = build_error_response(message, 200, "OK")
        if response is not None:
            self._transport.sendto(bytes(response), addr)

    async def wait_for(self, check: object, timeout: float = 10.0) -> None:
        """Until `check(self.seen)` is true (re-checked after every NOTIFY and final response)."""
        async with asyncio.timeout(timeout):
            while not check(self.seen):  # type: ignore[operator]
                self.changed.clear()
                await self.changed.wait()
