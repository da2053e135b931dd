"""The SIP peer harness proves itself with baresip as the client: digest registration, calls
through Kamailio over UDP/TCP/TLS with two-way audio checked by frequency, 404s, restart, SRTP."""

from __future__ import annotations

import socket
import ssl
import uuid

import pytest

from tests.sip_peers.audio import dominant_frequency
from tests.sip_peers.baresip import Account, Baresip
from tests.sip_peers.certs import make_ca
from tests.sip_peers.fixtures import BaresipFactory, KamailioFactory, RegisterPhone
from tests.sip_peers.kamailio import Kamailio, options_ping
from tests.sip_peers.procs import PeerError, require_binary, wait_for

pytestmark = pytest.mark.peers

A_HZ, B_HZ = 440.0, 1000.0
TALK_S = 1.0  # long enough for ~50 RTP packets each way


def _talk_and_hang_up(caller: Baresip, callee: Baresip, uri: str) -> None:
    """Dial, wait for both sides established, let audio flow, hang up, wait for both closed."""
    assert caller.dial(uri)["ok"]
    ev = caller.wait_event("CALL_ESTABLISHED", "CALL_CLOSED", timeout=10)
    assert ev["type"] == "CALL_ESTABLISHED", ev
    callee.wait_event("CALL_ESTABLISHED", timeout=10)
    caller.wait_event("CALL_RTPESTAB", timeout=5)
    callee.wait_event("CALL_RTPESTAB", timeout=5)
    # Bounded wait for audio: the received dumps must hold TALK_S of samples (8 kHz, 16-bit).
    need = int(8000 * 2 * TALK_S)
    wait_for(lambda: _dec_bytes(caller) > need and _dec_bytes(callee) > need, 10, "audio in both directions")
    assert caller.hangup()["ok"]
    callee.wait_event("CALL_CLOSED", timeout=10)
    caller.wait_event("CALL_CLOSED", timeout=10)


def _dec_bytes(phone: Baresip) -> int:
    decs = [p for p in phone.recordings() if p.name.endswith("-dec.wav")]
    return decs[-1].stat().st_size if decs else 0


def _assert_heard(phone: Baresip, hz: float) -> None:
    heard = dominant_frequency(phone.received_wav())
    assert abs(heard - hz) < 10, f"{phone.workdir.name} heard {heard:.1f} Hz, expected {hz:.0f} Hz"


def test_register_udp_with_digest(kamailio: Kamailio, register_phone: RegisterPhone) -> None:
    """REGISTER is challenged (401) and then accepted with the right password."""
    register_phone(kamailio, "alice")
    assert kamailio.is_registered("alice")
    assert not kamailio.is_registered("bob")
    log = kamailio.log()
    assert log.count("REQ REGISTER") >= 2, "expected a challenged REGISTER followed by an authenticated one"


def test_wrong_password_fails(kamailio: Kamailio, baresip_factory: BaresipFactory) -> None:
    phone = baresip_factory("mallory", accounts=[Account(kamailio.uri("alice"), "not-the-password")])
    ev = phone.wait_event("REGISTER_OK", "REGISTER_FAIL", timeout=10)
    assert ev["type"] == "REGISTER_FAIL", ev


def test_unknown_user_fails(kamailio: Kamailio, baresip_factory: BaresipFactory) -> None:
    phone = baresip_factory("nobody", accounts=[Account(kamailio.uri("nobody"), "whatever")])
    assert phone.wait_event("REGISTER_OK", "REGISTER_FAIL", timeout=10)["type"] == "REGISTER_FAIL"


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_call_through_kamailio(kamailio: Kamailio, register_phone: RegisterPhone, transport: str) -> None:
    """alice calls bob via the proxy (INVITE digest-challenged too); each hears the other's tone."""
    a = register_phone(kamailio, "alice", transport, tone_hz=A_HZ)
    b = register_phone(kamailio, "bob", transport, tone_hz=B_HZ, answermode="auto")
    _talk_and_hang_up(a.phone, b.phone, kamailio.uri("bob", transport))
    _assert_heard(a.phone, B_HZ)
    _assert_heard(b.phone, A_HZ)
    assert f"({transport})" in kamailio.log()


def test_call_to_unregistered_user_gets_404(kamailio: Kamailio, register_phone: RegisterPhone) -> None:
    a = register_phone(kamailio, "alice")
    assert a.phone.dial(kamailio.uri("carol"))["ok"]
    ev = a.phone.wait_event("CALL_CLOSED", "CALL_ESTABLISHED", timeout=10)
    assert ev["type"] == "CALL_CLOSED" and "404" in ev["param"], ev


def test_direct_call_without_proxy(baresip_factory: BaresipFactory) -> None:
    """Two baresips with no registrar (the firmware's peer-to-peer case) still exchange audio."""
    a = baresip_factory("direct-a", A_HZ, [Account("sip:a@127.0.0.1")])
    b = baresip_factory("direct-b", B_HZ, [Account("sip:b@127.0.0.1", answermode="auto")])
    _talk_and_hang_up(a, b, b.contact_uri("b"))
    _assert_heard(a, B_HZ)
    _assert_heard(b, A_HZ)


def test_hold_resume_and_dtmf(baresip_factory: BaresipFactory) -> None:
    """The control surface e2e tests need mid-call: hold/resume re-INVITEs and RFC 4733 DTMF."""
    a = baresip_factory("ctl-a", A_HZ, [Account("sip:a@127.0.0.1")])
    b = baresip_factory("ctl-b", B_HZ, [Account("sip:b@127.0.0.1", answermode="auto")])
    assert a.dial(b.contact_uri("b"))["ok"]
    a.wait_event("CALL_ESTABLISHED")
    b.wait_event("CALL_ESTABLISHED")
    b.wait_event("CALL_REMOTE_SDP")  # the initial offer
    for action in (a.hold, a.resume):
        assert action()["ok"]
        assert b.wait_event("CALL_REMOTE_SDP", timeout=5)["param"] == "offer"
    a.send_dtmf("5")
    assert b.wait_event("CALL_DTMF_START", timeout=5)["param"] == "5"
    assert a.hangup()["ok"]
    b.wait_event("CALL_CLOSED")


def test_tls_server_cert_verifies_against_test_ca(kamailio: Kamailio) -> None:
    """A verifying TLS client (as the firmware's will be) accepts Kamailio's cert via the test CA.

    baresip 1.0.0 itself does not verify the server certificate, so this is checked with Python's ssl.
    """
    assert kamailio.ca is not None and kamailio.ports is not None
    ctx = ssl.create_default_context(cafile=str(kamailio.ca.ca_cert))
    with (
        socket.create_connection(("127.0.0.1", kamailio.ports.tls), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    untrusting = ssl.create_default_context()
    untrusting.load_verify_locations(cadata=_other_ca_pem(kamailio))
    with (
        socket.create_connection(("127.0.0.1", kamailio.ports.tls), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        untrusting.wrap_socket(raw, server_hostname="127.0.0.1")


def _other_ca_pem(kamailio: Kamailio) -> str:
    """A CA that did not sign Kamailio's certificate."""
    return make_ca(kamailio.workdir / "other-ca").ca_cert.read_text()


def test_srtp_call(kamailio: Kamailio, baresip_factory: BaresipFactory) -> None:
    """Mandatory SDES-SRTP (baresip's srtp module) end to end, audio checked."""
    users = kamailio.users
    a = baresip_factory(
        "alice-srtp", A_HZ, [Account(kamailio.uri("alice"), users["alice"], mediaenc="srtp-mand")]
    )
    b = baresip_factory(
        "bob-srtp",
        B_HZ,
        [Account(kamailio.uri("bob"), users["bob"], mediaenc="srtp-mand", answermode="auto")],
    )
    for phone in (a, b):
        assert phone.wait_event("REGISTER_OK", "REGISTER_FAIL")["type"] == "REGISTER_OK"
    _talk_and_hang_up(a, b, kamailio.uri("bob"))
    _assert_heard(a, B_HZ)
    _assert_heard(b, A_HZ)
    for phone in (a, b):
        assert "SRTP is Enabled" in phone.log_path.read_text(), f"{phone.workdir.name}: SRTP not negotiated"


def test_restart_loses_registrations(
    kamailio_factory: KamailioFactory, register_phone: RegisterPhone
) -> None:
    """restart() keeps the ports; the in-memory location table starts empty again."""
    k = kamailio_factory()
    a = register_phone(k, "alice")
    register_phone(k, "bob")
    udp = k.ports.udp if k.ports else 0
    k.restart()
    assert k.ports is not None and k.ports.udp == udp
    assert options_ping("127.0.0.1", udp) == "SIP/2.0 200 Keepalive"
    assert a.phone.dial(k.uri("bob"))["ok"]
    ev = a.phone.wait_event("CALL_CLOSED", "CALL_ESTABLISHED", timeout=10)
    assert ev["type"] == "CALL_CLOSED" and "404" in ev["param"], ev


def test_two_instances_have_separate_ports(kamailio_factory: KamailioFactory) -> None:
    """A second Kamailio (for failover tests) runs alongside the first."""
    k1, k2 = kamailio_factory(tls=False), kamailio_factory(tls=False)
    assert k1.ports != k2.ports
    for k in (k1, k2):
        assert k.ports is not None and options_ping("127.0.0.1", k.ports.udp) is not None
    if k2.ipv6 and k2.ports is not None:
        assert options_ping("::1", k2.ports.udp) is not None
    k1.stop()
    assert k2.ports is not None and options_ping("127.0.0.1", k2.ports.udp) is not None


def test_sha256_challenge(kamailio_factory: KamailioFactory) -> None:
    """Kamailio 5.6's auth module can challenge with algorithm=SHA-256 (for the firmware's stack)."""
    k = kamailio_factory(algorithm="SHA-256", tls=False)
    assert k.ports is not None
    reply = register_raw("127.0.0.1", k.ports.udp, "alice")
    assert reply.startswith("SIP/2.0 401"), reply
    assert "algorithm=SHA-256" in reply, reply


def test_missing_binary_fails_naming_the_package() -> None:
    """A missing peer binary must fail the test (not skip it) and say what to install."""
    with pytest.raises(PeerError, match="apt-get install -y --no-install-recommends some-package"):
        require_binary("hookflash-no-such-binary", "some-package")


def register_raw(host: str, port: int, user: str) -> str:
    """One unauthenticated REGISTER over UDP; the full reply text."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(3)
        lport = s.getsockname()[1]
        msg = (
            f"REGISTER sip:{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:{user}@{host}>;tag={uuid.uuid4().hex[:8]}\r\n"
            f"To: <sip:{user}@{host}>\r\n"
            f"Call-ID: {uuid.uuid4().hex}\r\nCSeq: 1 REGISTER\r\n"
            f"Contact: <sip:{user}@127.0.0.1:{lport}>\r\nExpires: 60\r\nContent-Length: 0\r\n\r\n"
        )
        s.sendto(msg.encode(), (host, port))
        return s.recv(65535).decode(errors="replace")
