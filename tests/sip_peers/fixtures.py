"""pytest fixtures for real SIP peers; load with `pytest_plugins = ["tests.sip_peers.fixtures"]`.

Every process a fixture starts is stopped by pid at teardown, pass or fail, and when a test fails
the tail of each peer's log is attached to its report.

    def test_x(kamailio, register_phone, baresip_factory):
        k = kamailio                                   # running; users alice/bob/carol (DEFAULT_USERS)
        bob = register_phone(k, "bob", "tcp", tone_hz=1000)        # REGISTER_OK awaited, auto-answer
        # ... point the firmware at k.uri("alice", "udp") with password k.users["alice"] ...
        bob.phone.dial(k.uri("alice", "tcp")); bob.phone.wait_event("CALL_ESTABLISHED")
        bob.phone.hangup(); bob.phone.wait_event("CALL_CLOSED")
        dominant_frequency(bob.phone.received_wav())   # what bob heard (tests.sip_peers.audio)

`kamailio_factory(users=..., algorithm="SHA-256", auth_invite=False, tls=False, start=False)` makes
more (second instance for failover; .stop()/.start()/.restart() keep the ports).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests.sip_peers import procs
from tests.sip_peers.audio import write_tone
from tests.sip_peers.baresip import Account, Baresip
from tests.sip_peers.kamailio import Kamailio

DEFAULT_USERS = {"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret"}
_PEERS = pytest.StashKey[list[Any]]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """On failure, attach each peer's log tail so the cause is visible without digging in tmp dirs."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for peer in item.stash.get(_PEERS, []):
            title = f"{type(peer).__name__} log {peer.log_path}"
            if all(name != title for name, _ in report.sections):
                report.sections.append((title, procs.tail(peer.log_path, 60)))


def _track(request: pytest.FixtureRequest, peer: Any) -> None:
    request.node.stash.setdefault(_PEERS, []).append(peer)


class KamailioFactory(Protocol):
    def __call__(
        self, users: dict[str, str] | None = None, start: bool = True, **options: Any
    ) -> Kamailio: ...


class BaresipFactory(Protocol):
    def __call__(
        self,
        name: str,
        tone_hz: float = 440.0,
        accounts: list[Account] | None = None,
        kamailio: Kamailio | None = None,
        start: bool = True,
    ) -> Baresip: ...


@pytest.fixture
def kamailio_factory(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[KamailioFactory]:
    """Make Kamailio instances (each with its own dir and ports); all stopped at teardown."""
    made: list[Kamailio] = []

    def make(users: dict[str, str] | None = None, start: bool = True, **options: Any) -> Kamailio:
        k = Kamailio(
            tmp_path / f"kamailio{len(made)}",
            users=dict(DEFAULT_USERS if users is None else users),
            **options,
        )
        made.append(k)
        _track(request, k)
        if start:
            k.start()
        return k

    yield make
    for k in made:
        k.stop()


@pytest.fixture
def kamailio(kamailio_factory: KamailioFactory) -> Kamailio:
    """A running Kamailio (UDP, TCP, TLS) with DEFAULT_USERS, MD5 digest, INVITEs challenged."""
    return kamailio_factory()


@pytest.fixture
def baresip_factory(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[BaresipFactory]:
    """Make baresip instances playing a sine at `tone_hz`; all stopped at teardown.

    Passing `kamailio` makes the instance trust that Kamailio's test CA (for TLS).
    """
    made: list[Baresip] = []

    def make(
        name: str,
        tone_hz: float = 440.0,
        accounts: list[Account] | None = None,
        kamailio: Kamailio | None = None,
        start: bool = True,
    ) -> Baresip:
        workdir = tmp_path / f"baresip-{name}"
        workdir.mkdir(parents=True)
        tone = write_tone(workdir / f"tone-{tone_hz:g}Hz.wav", tone_hz)
        ca = kamailio.ca.ca_cert if kamailio is not None and kamailio.ca is not None else None
        b = Baresip(workdir, tone, accounts=list(accounts or []), ca_file=ca)
        made.append(b)
        _track(request, b)
        if start:
            b.start()
        return b

    yield make
    for b in made:
        b.stop()


@dataclass
class RegisteredPhone:
    """A baresip registered to a Kamailio as `user`."""

    user: str
    phone: Baresip
    aor: str


class RegisterPhone(Protocol):
    def __call__(
        self,
        kamailio: Kamailio,
        user: str,
        transport: str = "udp",
        tone_hz: float = 440.0,
        answermode: str = "auto",
        password: str | None = None,
        timeout: float = 10.0,
    ) -> RegisteredPhone: ...


@pytest.fixture
def register_phone(baresip_factory: BaresipFactory) -> RegisterPhone:
    """Start a baresip registered (digest) as `user` over `transport`; waits for REGISTER_OK."""

    def make(
        kamailio: Kamailio,
        user: str,
        transport: str = "udp",
        tone_hz: float = 440.0,
        answermode: str = "auto",
        password: str | None = None,
        timeout: float = 10.0,
    ) -> RegisteredPhone:
        aor = kamailio.uri(user, transport)
        account = Account(
            aor, password if password is not None else kamailio.users[user], answermode=answermode
        )
        phone = baresip_factory(f"{user}-{transport}", tone_hz, [account], kamailio=kamailio)
        event = phone.wait_event("REGISTER_OK", "REGISTER_FAIL", timeout=timeout)
        if event["type"] != "REGISTER_OK":
            raise procs.PeerError(f"{user} failed to register over {transport}: {event}")
        return RegisteredPhone(user, phone, aor)

    return make
