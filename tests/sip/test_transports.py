"""The UDP/TCP/TLS adapters on real loopback sockets (and against Kamailio, marker `peers`).

Every test runs its own event loop under an overall timeout and closes every transport it opened.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from firmware.sip.message import FramingError, Response, parse_message
from firmware.sip.transports import (
    MAX_DATAGRAM,
    Addr,
    StreamTransport,
    Transport,
    TransportClosed,
    client_tls_context,
    open_tcp,
    open_tls,
    open_udp,
)
from tests.sip_peers.certs import TestCA, make_ca
from tests.sip_peers.fixtures import KamailioFactory
from tests.sip_peers.ports import ipv6_loopback_available

HOSTS = [
    "127.0.0.1",
    pytest.param("::1", marks=pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback")),
]


def run(coro: Coroutine[Any, Any, None], timeout: float = 10.0) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))


async def until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


class Sink:
    """Collects what a transport delivers."""

    def __init__(self) -> None:
        self.messages: list[tuple[bytes, Addr, Transport]] = []
        self.errors: list[tuple[Addr, Exception]] = []

    def on_message(self, data: bytes, addr: Addr, transport: Transport) -> None:
        self.messages.append((data, addr, transport))

    def on_error(self, addr: Addr, exc: Exception) -> None:
        self.errors.append((addr, exc))

    @property
    def data(self) -> list[bytes]:
        return [data for data, _, _ in self.messages]


def sip(n: int, body: bytes = b"", proto: str = "TCP") -> bytes:
    return (
        f"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/{proto} 127.0.0.1:5060;branch=z9hG4bK{n}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:a@127.0.0.1>;tag=1\r\n"
        "To: <sip:x@127.0.0.1>\r\n"
        f"Call-ID: c{n}\r\n"
        f"CSeq: {n} OPTIONS\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def closed_port(host: str) -> int:
    """A port nobody listens on (bound, read, released)."""
    kind = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(kind, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# -- UDP ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", HOSTS)
def test_udp_round_trip_ignores_keepalives(host: str) -> None:
    async def main() -> None:
        sa, sb = Sink(), Sink()
        a = await open_udp((host, 0), sa.on_message, sa.on_error)
        b = await open_udp((host, 0), sb.on_message, sb.on_error)
        try:
            assert a.local_addr[0] == host and a.local_addr[1] > 0 and not a.reliable
            with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM) as raw:
                raw.sendto(b"", b.local_addr)
            a.send(b"\r\n\r\n", b.local_addr)
            a.send(sip(1, b"hello", "UDP"), b.local_addr)
            await until(lambda: len(sb.messages) == 1)
            data, addr, transport = sb.messages[0]
            assert (data, addr, transport) == (sip(1, b"hello", "UDP"), a.local_addr, b)
            b.send(b"SIP/2.0 200 OK\r\n\r\n", addr)
            await until(lambda: len(sa.messages) == 1)
            assert sa.messages[0][:2] == (b"SIP/2.0 200 OK\r\n\r\n", b.local_addr)
            assert sb.data == [sip(1, b"hello", "UDP")] and not sa.errors and not sb.errors
        finally:
            await a.close()
            await b.close()

    run(main())


@pytest.mark.parametrize("host", HOSTS)
def test_udp_icmp_refused_reported_per_destination(host: str) -> None:
    async def main() -> None:
        sink = Sink()
        t = await open_udp((host, 0), sink.on_message, sink.on_error)
        dead = [(host, closed_port(host)), (host, closed_port(host))]
        try:
            for addr in dead:
                t.send(sip(1, proto="UDP"), addr)
            await until(lambda: len(sink.errors) >= 2)
            assert sorted(addr for addr, _ in sink.errors) == sorted(dead)
            assert all(isinstance(exc, ConnectionRefusedError) for _, exc in sink.errors)
        finally:
            await t.close()

    run(main())


def test_udp_oversize_refused_and_callback_bug_does_not_kill_socket() -> None:
    async def main() -> None:
        sink = Sink()
        received: list[bytes] = []

        def buggy(data: bytes, addr: Addr, transport: Transport) -> None:
            received.append(data)
            if len(received) == 1:
                raise RuntimeError("UA bug")

        a = await open_udp(("127.0.0.1", 0), sink.on_message, sink.on_error)
        b = await open_udp(("127.0.0.1", 0), buggy, sink.on_error)
        try:
            a.send(b"x" * (MAX_DATAGRAM + 1), b.local_addr)
            assert len(sink.errors) == 1
            addr, exc = sink.errors[0]
            assert addr == b.local_addr and isinstance(exc, OSError) and exc.errno == errno.EMSGSIZE
            a.send(sip(1, proto="UDP"), b.local_addr)
            a.send(sip(2, proto="UDP"), b.local_addr)
            await until(lambda: len(received) == 2)
        finally:
            await a.close()
            await b.close()
        a.send(sip(3, proto="UDP"), b.local_addr)
        assert isinstance(sink.errors[-1][1], TransportClosed)

    run(main())


# -- TCP ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", HOSTS)
def test_tcp_framing_reuse_and_responses_on_same_connection(host: str) -> None:
    async def main() -> None:
        ss, sc = Sink(), Sink()
        server = await open_tcp((host, 0), ss.on_message, ss.on_error)
        client = await open_tcp(None, sc.on_message, sc.on_error, listen=False)
        try:
            assert server.reliable and server.kind == "tcp" and server.local_addr[1] > 0
            client.send(sip(1) + sip(2, b"body"), server.local_addr)  # two messages, one write
            third = sip(3, b"v=0\r\n")
            for i in range(0, len(third), 7):  # one message, many writes
                client.send(third[i : i + 7], server.local_addr)
                await asyncio.sleep(0.001)
            await until(lambda: len(ss.messages) == 3)
            assert ss.data == [sip(1), sip(2, b"body"), third]
            peer = ss.messages[0][1]
            assert {addr for _, addr, _ in ss.messages} == {peer}
            assert peer == client.connection_local_addr(server.local_addr)
            for n in (1, 2, 3):
                server.send(b"SIP/2.0 200 OK\r\nCSeq: %d OPTIONS\r\nContent-Length: 0\r\n\r\n" % n, peer)
            await until(lambda: len(sc.messages) == 3)
            assert {addr for _, addr, _ in sc.messages} == {server.local_addr}
            assert server.peers == [peer] and client.peers == [server.local_addr]
            assert not ss.errors and not sc.errors
        finally:
            await client.close()
            await server.close()

    run(main())


def test_tcp_oversize_message_closes_connection() -> None:
    async def main() -> None:
        sink = Sink()
        server = await open_tcp(("127.0.0.1", 0), sink.on_message, sink.on_error)
        reader, writer = await asyncio.open_connection(*server.local_addr)
        try:
            writer.write(sip(1))
            await until(lambda: len(sink.messages) == 1)
            writer.write(sip(2).replace(b"Content-Length: 0", b"Content-Length: 70000"))
            assert await reader.read() == b""  # closed by the server
            await until(lambda: len(sink.errors) == 1)
            addr, exc = sink.errors[0]
            assert addr == writer.get_extra_info("sockname")[:2]
            assert isinstance(exc, FramingError) and exc.status == 413
            assert sink.data == [sip(1)] and server.peers == []
        finally:
            writer.close()
            await server.close()

    run(main())


def test_tcp_crlf_ping_answered_with_pong() -> None:
    async def main() -> None:
        sink = Sink()
        server = await open_tcp(("127.0.0.1", 0), sink.on_message, sink.on_error)
        reader, writer = await asyncio.open_connection(*server.local_addr)
        try:
            writer.write(b"\r\n\r\n")
            assert await reader.readexactly(2) == b"\r\n"
            writer.write(b"\r\n\r\n" + sip(1))
            assert await reader.readexactly(2) == b"\r\n"
            await until(lambda: len(sink.messages) == 1)
            assert sink.data == [sip(1)] and not sink.errors
        finally:
            writer.close()
            await server.close()

    run(main())


def test_tcp_keepalive_pong_and_missing_pong() -> None:
    async def main() -> None:
        ss, sc = Sink(), Sink()
        server = await open_tcp(("127.0.0.1", 0), ss.on_message, ss.on_error)
        pings = bytearray()

        async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            pings.extend(await reader.read(100))  # reads the ping, never answers
            await reader.read()
            writer.close()

        silent = await asyncio.start_server(mute, "127.0.0.1", 0)
        silent_addr = silent.sockets[0].getsockname()[:2]
        client = await open_tcp(None, sc.on_message, sc.on_error, listen=False)
        try:
            client.send_keepalive(server.local_addr)
            assert isinstance(sc.errors.pop()[1], TransportClosed)  # no flow to keep alive
            client.send(sip(1), server.local_addr)
            await until(lambda: len(ss.messages) == 1)
            client.send_keepalive(server.local_addr, pong_timeout=0.3)
            await asyncio.sleep(0.5)
            assert not sc.errors and client.peers == [server.local_addr]

            client.send(b"", silent_addr)  # opens the connection
            await until(lambda: client.connection_local_addr(silent_addr) is not None)
            client.send_keepalive(silent_addr, pong_timeout=0.2)
            await until(lambda: len(sc.errors) == 1)
            assert sc.errors[0][0] == silent_addr and isinstance(sc.errors[0][1], TimeoutError)
            assert bytes(pings) == b"\r\n\r\n" and client.peers == [server.local_addr]
        finally:
            await client.close()
            await server.close()
            silent.close()
            await silent.wait_closed()

    run(main())


def test_tcp_refused_connect_reported_and_queued_data_dropped() -> None:
    async def main() -> None:
        sink = Sink()
        client = await open_tcp(None, sink.on_message, sink.on_error, listen=False)
        dead = ("127.0.0.1", closed_port("127.0.0.1"))
        try:
            client.send(sip(1), dead)
            client.send(sip(2), dead)  # queued behind the same connect
            await until(lambda: len(sink.errors) == 1)
            assert sink.errors[0][0] == dead and isinstance(sink.errors[0][1], ConnectionRefusedError)
            assert client.peers == []
            await asyncio.sleep(0.05)
            assert len(sink.errors) == 1
        finally:
            await client.close()

    run(main())


def test_tcp_idle_connection_closed_quietly_peer_told() -> None:
    async def main() -> None:
        ss, sc = Sink(), Sink()
        server = await open_tcp(("127.0.0.1", 0), ss.on_message, ss.on_error)
        client = await open_tcp(None, sc.on_message, sc.on_error, listen=False, idle_timeout=0.2)
        try:
            client.send(sip(1), server.local_addr)
            await until(lambda: len(ss.messages) == 1)
            peer = ss.messages[0][1]
            await until(lambda: client.peers == [] and server.peers == [])
            assert not sc.errors  # our own idle close is not an error
            assert [(a, type(e)) for a, e in ss.errors] == [(peer, TransportClosed)]
            client.send(sip(2), server.local_addr)  # a new connection is opened
            await until(lambda: len(ss.messages) == 2)
            assert ss.messages[1][1] != peer
        finally:
            await client.close()
            await server.close()

    run(main())


# -- TLS ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cas(tmp_path_factory: pytest.TempPathFactory) -> tuple[TestCA, TestCA]:
    """The CA that signed the server certificate, and an unrelated one."""
    root = tmp_path_factory.mktemp("tls")
    return make_ca(root / "ca"), make_ca(root / "other")


def server_context(ca: TestCA, seen_sni: list[str | None]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(ca.server_cert, ca.server_key)

    def record(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        seen_sni.append(name)

    context.sni_callback = record
    return context


async def tls_pair(
    ca: TestCA, host: str, ca_file: Path, server_name: str | None, ss: Sink, sc: Sink, sni: list[str | None]
) -> tuple[StreamTransport, StreamTransport]:
    server = await open_tls(
        (host, 0),
        ss.on_message,
        ss.on_error,
        ssl_client=client_tls_context(str(ca.ca_cert)),
        ssl_server=server_context(ca, sni),
    )
    client = await open_tls(
        None, sc.on_message, sc.on_error, ssl_client=client_tls_context(str(ca_file)), server_name=server_name
    )
    return server, client


@pytest.mark.parametrize("host", HOSTS)
def test_tls_verified_round_trip(cas: tuple[TestCA, TestCA], host: str) -> None:
    ca, _ = cas

    async def main() -> None:
        ss, sc, sni = Sink(), Sink(), list[str | None]()
        server, client = await tls_pair(ca, host, ca.ca_cert, None, ss, sc, sni)
        try:
            assert server.kind == "tls" and server.reliable
            client.send(sip(1, proto="TLS"), server.local_addr)
            await until(lambda: len(ss.messages) == 1)
            server.send(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", ss.messages[0][1])
            await until(lambda: len(sc.messages) == 1)
            assert ss.data == [sip(1, proto="TLS")] and sc.messages[0][1] == server.local_addr
            assert sni == [None]  # an IP literal is verified against the IP SAN and sent no SNI
            assert not ss.errors and not sc.errors
        finally:
            await client.close()
            await server.close()

    run(main())


def test_tls_sni_sent_and_name_verified(cas: tuple[TestCA, TestCA]) -> None:
    ca, _ = cas

    async def main() -> None:
        ss, sc, sni = Sink(), Sink(), list[str | None]()
        server, client = await tls_pair(ca, "127.0.0.1", ca.ca_cert, "localhost", ss, sc, sni)
        try:
            client.send(sip(1, proto="TLS"), server.local_addr)
            await until(lambda: len(ss.messages) == 1)
            assert sni == ["localhost"] and not sc.errors
        finally:
            await client.close()
            await server.close()

    run(main())


@pytest.mark.parametrize(
    ("other_ca", "server_name", "reason"),
    [(True, None, "unable to get local issuer"), (False, "sip.example.com", "Hostname mismatch")],
    ids=["untrusted-ca", "name-mismatch"],
)
def test_tls_verification_failure_reported(
    cas: tuple[TestCA, TestCA], other_ca: bool, server_name: str | None, reason: str
) -> None:
    ca, other = cas

    async def main() -> None:
        ss, sc, sni = Sink(), Sink(), list[str | None]()
        trust = other.ca_cert if other_ca else ca.ca_cert
        server, client = await tls_pair(ca, "127.0.0.1", trust, server_name, ss, sc, sni)
        try:
            client.send(sip(1, proto="TLS"), server.local_addr)
            await until(lambda: len(sc.errors) == 1)
            addr, exc = sc.errors[0]
            assert addr == server.local_addr and isinstance(exc, ssl.SSLCertVerificationError)
            assert "certificate verify failed" in str(exc) and reason in str(exc)
            await asyncio.sleep(0.05)
            assert ss.messages == [] and client.peers == []
        finally:
            await client.close()
            await server.close()

    run(main())


def test_tls_handshake_that_never_completes_times_out(cas: tuple[TestCA, TestCA]) -> None:
    ca, _ = cas

    async def main() -> None:
        sink = Sink()

        async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()  # accepts TCP, never speaks TLS
            writer.close()

        silent = await asyncio.start_server(mute, "127.0.0.1", 0)
        addr = silent.sockets[0].getsockname()[:2]
        client = await open_tls(
            None,
            sink.on_message,
            sink.on_error,
            ssl_client=client_tls_context(str(ca.ca_cert)),
            connect_timeout=0.2,
        )
        try:
            client.send(sip(1, proto="TLS"), addr)
            await until(lambda: len(sink.errors) == 1)
            assert sink.errors[0][0] == addr and isinstance(sink.errors[0][1], TimeoutError)
            assert client.peers == []
        finally:
            await client.close()
            silent.close()
            await silent.wait_closed()

    run(main())


def test_client_tls_context_verifies_by_default() -> None:
    strict, lax = client_tls_context(), client_tls_context(verify=False)
    assert strict.verify_mode == ssl.CERT_REQUIRED and strict.check_hostname
    assert lax.verify_mode == ssl.CERT_NONE and not lax.check_hostname
    assert strict.minimum_version == ssl.TLSVersion.TLSv1_2


# -- against Kamailio -----------------------------------------------------------------------------


@pytest.mark.peers
def test_options_to_kamailio_over_tcp_and_tls(kamailio_factory: KamailioFactory) -> None:
    k = kamailio_factory(tls=True)
    assert k.ports is not None and k.ca is not None
    ca_file = str(k.ca.ca_cert)
    ports = k.ports

    def options(proto: str, port: int, local: Addr) -> tuple[bytes, str]:
        call_id = uuid.uuid4().hex
        target = f"sip:127.0.0.1:{port};transport={proto.lower()}"
        return (
            f"OPTIONS {target} SIP/2.0\r\n"
            f"Via: SIP/2.0/{proto} {local[0]}:{local[1]};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@127.0.0.1>;tag={uuid.uuid4().hex[:8]}\r\n"
            f"To: <{target}>\r\n"
            f"Call-ID: {call_id}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode(), call_id

    async def main() -> None:
        sink = Sink()
        tcp = await open_tcp(("127.0.0.1", 0), sink.on_message, sink.on_error)
        tls = await open_tls(None, sink.on_message, sink.on_error, ssl_client=client_tls_context(ca_file))
        try:
            for transport, proto, port in ((tcp, "TCP", ports.tcp), (tls, "TLS", ports.tls)):
                sink.messages.clear()
                data, call_id = options(proto, port, transport.local_addr)
                transport.send(data, ("127.0.0.1", port))
                await until(lambda: len(sink.messages) == 1, timeout=5)
                [(reply, addr, via)] = sink.messages
                response = parse_message(reply)
                assert isinstance(response, Response) and response.status == 200
                assert response.call_id == call_id and addr == ("127.0.0.1", port) and via is transport
            assert not sink.errors
        finally:
            await tcp.close()
            await tls.close()

    run(main(), timeout=15)
