"""The gateway: the one place that knows every part (DESIGN.md "The house").

It opens the board, runs the media clock, starts a SIP agent when a registrar is configured (one
account per enabled port, named by the port index), keeps one `PortLine` per configured port and
executes what they ask. A number that is another port's extension is connected locally (intercom):
the callee rings with the caller's extension and display name as caller ID, and once answered the
two ports talk real RTP to each other over 127.0.0.1 (PCMU, telephone-event 101, 20 ms), so a local
call goes through the same media path as a PBX call. Without a registrar only intercom calls exist.
A PBX call's caller ID comes from its identity headers (`sip_caller`) and its ring cadence from
Alert-Info (`alert_info_cadence`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from dsp.callerid import Absence, generate_alert, generate_callerid, generate_dtmf_callerid, generate_vmwi
from dsp.tones import Tone, country, generate_tone, ring_cadence, tone
from firmware.config import Config
from firmware.line.dialplan import DialPlan
from firmware.line.port import (
    Action,
    Answer,
    CallOver,
    CallWaitingAlert,
    ConnectMedia,
    DisconnectMedia,
    Features,
    Hangup,
    Hold,
    PlaceCall,
    PlayTone,
    PortLine,
    Reject,
    Resume,
    Ring,
    SendCallerId,
    SendVmwi,
    SetFeed,
    SetPolarity,
    State,
    StopRing,
    StopTone,
    Transfer,
)
from firmware.media.clock import MediaClock
from firmware.media.pipeline import Pipeline, TickResult
from firmware.media.rtp import Address
from firmware.sip.agent import SipAgent
from firmware.sip.headers import HeaderError, parse_name_addr_list, split_list
from firmware.sip.refer import Replaces
from firmware.sip.sdp import Negotiated
from firmware.sip.ua import (
    CallAnswered,
    CallEnded,
    CallError,
    CallProgress,
    CallResumed,
    Event,
    IncomingCall,
    MessageWaiting,
    RegistrationChanged,
    TransferProgress,
    TransferRequested,
)
from firmware.sip.uri import SipUri, TelUri, Uri, UriError, parse_uri
from firmware.store.history import CallHistory, CallRecord
from hal.backends import open_board
from hal.board import Board
from hal.events import HookEvent
from hal.line import AlertMode

_log = logging.getLogger("hookflash")

LOOPBACK = "127.0.0.1"
PCMU = 0
TELEPHONE_EVENT = 101
PTIME = 20
ALERT_MODES = {"bell202": AlertMode.AFTER_FIRST_RING, "v23": AlertMode.DT_AS,
               "dtmf": AlertMode.LINE_REVERSAL}
"""Caller-ID slot per standard: GR-30-CORE after the first ring; ETSI EN 300 659-1 DT-AS for V.23;
ETSI ES 200 778-1 annex B line reversal for DTMF caller ID."""
SAS_S = 0.3
"""Subscriber alerting signal: one 300 ms burst of call-waiting tone (GR-506-CORE, SR-TSV-002476)."""
SAS_CAS_GAP_S = 0.01
CAS_ACK_WAIT_S = 0.6
"""The far end stays muted this long after the CAS, for the phone's ack and the FSK that follows it."""
CAS_ACK_TO_FSK_S = 0.08
"""The FSK starts 50-500 ms after the phone's acknowledgement ends (SR-TSV-002476); the 'D' is
reported at its leading edge, and lasts at least 50 ms."""


@dataclass
class _Leg:
    """One call of a port (a port has up to two: see firmware.line.port)."""

    kind: Literal["sip", "local"]
    id: str
    """The SIP Call-ID ('' until the INVITE is out), or the local call's id."""
    port: int
    key: str
    """The port's key for the call (what the line's actions and inputs name)."""
    owner: str
    """The media clock's owner of this leg's sockets (unique, even when a leg replaces another)."""
    peer: int | None = None
    """The other port of a local call, and its key for the call."""
    peer_key: str = ""
    bound: asyncio.Future[Address] | None = None
    negotiated: Negotiated | None = None
    want_media: bool = False
    media_on: bool = False
    transfer: bool = False
    """Handed over by our REFER: the line let go of it; the gateway ends it when the transfer reports."""
    replacing: _Leg | None = None
    """For the call an incoming REFER asked for: the leg it takes over once answered."""


class Gateway:
    """Everything that runs while `hookflash run` runs; `start()`, then `stop()` (idempotent)."""

    def __init__(self, config: Config, *, board: Board | None = None) -> None:
        self.config = config
        self.country = config.regional.country
        self.board = board if board is not None else open_board(config.to_board_config())
        self.pipeline = Pipeline(self.board.ports)
        self.clock = MediaClock(self.board, self.pipeline, on_hook=self._on_hook, on_tick=self._on_tick)
        self.lines: dict[int, PortLine] = {}
        tones = frozenset(country(self.country).tones)
        self.extensions: dict[str, int] = {}
        for index, port in enumerate(config.ports[:self.board.ports]):
            if port.enabled:
                features = Features(port.call_waiting, port.three_way, port.transfer)
                self.lines[index] = PortLine(index, DialPlan.parse(port.dial_plan), tones,
                                             hotline=port.hotline, polarity_reversal=port.polarity_reversal,
                                             features=features)
                self.extensions[port.extension] = index
        self.agent: SipAgent | None = None
        self.history: CallHistory | None = None
        self._legs: dict[str, _Leg] = {}
        """Every call of every port, by the port's key for it."""
        self._by_call: dict[str, _Leg] = {}
        """SIP calls by Call-ID (including legs being transferred and calls placed for a REFER)."""
        self._seq = 0
        self._clock_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = False

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        data = Path(self.config.system.data_dir)
        data.mkdir(parents=True, exist_ok=True)
        self.history = CallHistory(self.config.system.history_db)
        self._clock_task = asyncio.create_task(self.clock.run(), name="media-clock")
        if not self.config.intercom_only:
            self.agent = SipAgent(self.config.to_agent_config(), on_event=self._on_sip)
            await self.agent.start()
        mode = f"registrar {self.config.sip.registrar}" if self.agent else "intercom only (no registrar)"
        _log.info("gateway ready: %s backend, %d ports, %s, extensions %s", self.config.hardware.backend,
                  self.board.ports, mode, ", ".join(f"{e}=port {p + 1}" for e, p in self.extensions.items()))

    async def stop(self) -> None:
        """Hang up every call, unregister, stop ringing, close the board (pins safe) and the history."""
        if self._stopped:
            return
        self._stopped = True
        now = self.board.now()
        for leg in [*self._legs.values(), *self._by_call.values()]:
            self.clock.end_session(leg.port, owner=leg.owner)
        self._legs.clear()
        for line in self.board.lines:
            line.stop_ring(now)
        for task in list(self._tasks):
            task.cancel()
        if self.agent is not None:
            await self.agent.stop()  # BYE/CANCEL for every call, then un-REGISTER
        self.clock.stop()
        if self._clock_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock_task
        self.board.close()
        if self.history is not None:
            self.history.close()
        _log.info("gateway stopped")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("%s failed", task.get_name(), exc_info=task.exception())

    def _new_leg(self, kind: Literal["sip", "local"], call_id: str, port: int, key: str, **kw: Any) -> _Leg:
        self._seq += 1
        return _Leg(kind, call_id, port, key, f"{key}#{self._seq}", **kw)

    # -- inputs ---------------------------------------------------------------------------------
    def _on_hook(self, events: list[HookEvent]) -> None:
        for event in events:
            line = self.lines.get(event.port)
            if line is not None:
                _log.debug("port %d: %s", event.port + 1, event.kind)
                self._run(event.port, line.hook(event, self.board.now()))

    def _on_tick(self, result: TickResult) -> None:
        now = self.board.now()
        for ev in result.dtmf:
            line = self.lines.get(ev.port)
            if line is not None:
                self._run(ev.port, line.dtmf(ev.digit, ev.start, now))
        for port, line in self.lines.items():
            deadline = line.get_timer()
            if deadline is not None and deadline <= now:
                self._run(port, line.handle_timer(now))

    def _on_sip(self, event: Event) -> None:
        now = self.board.now()
        if isinstance(event, RegistrationChanged):
            _log.info("port %s registration: %s%s", int(event.account) + 1, event.state,
                      f" ({event.error})" if event.error else "")
        elif isinstance(event, IncomingCall):
            self._incoming_sip(event, now)
        elif isinstance(event, MessageWaiting):
            if (line := self.lines.get(int(event.account))) is not None:
                self._run(int(event.account), line.mwi(event.waiting, now))
        elif (leg := self._by_call.get(getattr(event, "call", ""))) is not None:
            if leg.transfer:
                self._transfer_event(leg, event)
            elif leg.replacing is not None:
                self._referred_event(leg, leg.replacing, event, now)
            else:
                self._call_event(leg, event, now)

    def _call_event(self, leg: _Leg, event: Event, now: float) -> None:
        port, line = leg.port, self.lines[leg.port]
        if isinstance(event, CallProgress):
            if event.early_media is not None:
                leg.negotiated = event.early_media
            self._run(port, line.progress(event.status, event.early_media is not None, now, call=leg.key))
        elif isinstance(event, CallAnswered):
            leg.negotiated = event.negotiated
            session = self.clock.session(leg.owner)
            if session is not None:  # early media: the final answer may differ
                session.update(event.negotiated)
            self._run(port, line.answered(now, call=leg.key))
            self._start_media(leg)
        elif isinstance(event, CallResumed) and not event.by_remote:
            leg.negotiated = event.negotiated  # the address to send to after our hold
            if (session := self.clock.session(leg.owner)) is not None:
                session.update(event.negotiated)
        elif isinstance(event, TransferRequested):
            self._follow_refer(leg, event)
        elif isinstance(event, CallEnded):
            self._by_call.pop(event.call, None)
            self._run(port, line.ended(event.reason, event.status, now, call=leg.key))

    def _incoming_sip(self, event: IncomingCall, now: float) -> None:
        assert self.agent is not None
        port = int(event.account)
        line = self.lines.get(port)
        if line is None:
            self.agent.reject(event.call, 404)
            return
        caller = sip_caller(event)
        cadence = alert_info_cadence(event.alert_info, self.country, self.config.port_ring_cadence(port))
        actions = line.incoming(event.call, caller.number, caller.name, now, private=caller.private,
                                cadence=cadence)
        if not any(isinstance(a, Reject) for a in actions):
            leg = self._new_leg("sip", event.call, port, event.call)
            leg.bound = asyncio.ensure_future(self._bind(leg, self._media_host()))
            self._legs[leg.key] = self._by_call[event.call] = leg
            self.agent.ringing(event.call)
        self._run(port, actions)

    # -- actions --------------------------------------------------------------------------------
    def _run(self, port: int, actions: list[Action]) -> None:
        for action in actions:
            _log.debug("port %d: %s", port + 1, action)
            self._execute(port, action)

    def _execute(self, port: int, action: Action) -> None:
        now = self.board.now()
        key = getattr(action, "call", "")
        leg = self._legs.get(key) if isinstance(key, str) else None
        if isinstance(action, PlayTone):
            self.pipeline.play_tone(port, self._tone(action.name))
        elif isinstance(action, StopTone):
            self.pipeline.stop_tone(port)
        elif isinstance(action, Ring):
            self._ring(port, action, now)
        elif isinstance(action, StopRing):
            self.board.lines[port].stop_ring(now)
        elif isinstance(action, SetFeed):
            self.board.lines[port].set_feed(action.feed)
        elif isinstance(action, SetPolarity):
            self.board.lines[port].set_polarity(action.reversed)
        elif isinstance(action, SendVmwi):
            self._vmwi(port, action.active, now)
        elif isinstance(action, CallWaitingAlert):
            self.pipeline.play_audio(port, self._call_waiting_alert(), mute_s=CAS_ACK_WAIT_S)
        elif isinstance(action, SendCallerId):
            self._offhook_callerid(port, action)
        elif isinstance(action, PlaceCall):
            self._place(port, action.number, action.call, now)
        elif isinstance(action, Answer) and leg is not None:
            self._answer(leg)
        elif isinstance(action, Hangup) and leg is not None:
            self._hangup(leg)
        elif isinstance(action, Hold | Resume) and leg is not None:
            self._hold(leg, isinstance(action, Hold))
        elif isinstance(action, Transfer):
            self._transfer(action)
        elif isinstance(action, Reject):
            self._reject(action)
        elif isinstance(action, ConnectMedia) and leg is not None:
            leg.want_media = True
            self._start_media(leg)
        elif isinstance(action, DisconnectMedia) and leg is not None:
            leg.want_media = False
            if leg.media_on:  # held, or about to end: the session waits, parked, on its sockets
                leg.media_on = False
                self.clock.park(port, leg.owner)
        elif isinstance(action, CallOver):
            self._call_over(port, action, now)

    def _tone(self, name: str) -> Tone:
        try:
            return tone(self.country, name)
        except KeyError:  # e.g. a country without a howler: reorder says the same thing
            return tone(self.country, "congestion")

    def _ring(self, port: int, ring: Ring, now: float) -> None:
        standard = self.config.port_callerid(port)
        number = "".join(c for c in ring.caller_number if c.isdigit())[:15] or None
        name = ring.caller_name.encode("ascii", "replace").decode()[:15] if ring.caller_name else None
        absence = Absence.PRIVATE if ring.private else Absence.UNAVAILABLE
        if standard == "dtmf":
            audio = generate_dtmf_callerid(number, absence=absence)
        else:
            audio = generate_callerid(number, name, datetime.now(), "v23" if standard == "v23" else "bell202",
                                      absence=absence)
        cadence = ring_cadence(ring.cadence or self.config.port_ring_cadence(port), self.country)
        if not self.board.lines[port].ring(cadence, now, callerid=audio, mode=ALERT_MODES[standard]):
            _log.info("port %d: not ringing, the phone is off-hook", port + 1)

    def _call_waiting_alert(self) -> npt.NDArray[np.int16]:
        """The subscriber alerting signal (the country's call-waiting tone, one 300 ms burst: GR-506
        SAS 440 Hz) then the CAS (SR-TSV-002476) that asks a type II phone for its acknowledgement."""
        sas = generate_tone(self.country, "call_waiting", SAS_S)
        gap = np.zeros(round(SAS_CAS_GAP_S * 8000), np.int16)
        return np.concatenate([sas, gap, generate_alert("cas")])

    def _offhook_callerid(self, port: int, action: SendCallerId) -> None:
        """Type II caller ID after the phone acknowledged the CAS (GR-30-CORE off-hook data: no
        seizure, 80 marks). DTMF caller ID has no off-hook form: nothing is sent."""
        standard = self.config.port_callerid(port)
        if standard == "dtmf":
            return
        number = "".join(c for c in action.caller_number if c.isdigit())[:15] or None
        name = action.caller_name.encode("ascii", "replace").decode()[:15] if action.caller_name else None
        absence = Absence.PRIVATE if action.private else Absence.UNAVAILABLE
        audio = generate_callerid(number, name, datetime.now(), "v23" if standard == "v23" else "bell202",
                                  absence=absence, offhook=True)
        gap = np.zeros(round(CAS_ACK_TO_FSK_S * 8000), np.int16)
        self.pipeline.play_audio(port, np.concatenate([gap, audio]))

    def _vmwi(self, port: int, active: bool, now: float) -> None:
        """The message-waiting lamp by on-hook FSK: GR-30-CORE/GR-1401 MDMF 0x82 (Bell 202) or
        EN 300 659-3 (V.23). DTMF caller ID has no message-waiting message: only stutter dial tone."""
        standard = self.config.port_callerid(port)
        if standard == "dtmf":
            return
        audio = generate_vmwi(active, "v23" if standard == "v23" else "bell202")
        # ETSI EN 300 659-1 §6.1.1: on-hook data without ringing follows a line reversal and DT-AS
        self.board.lines[port].send_onhook_data(audio, now, reversal=standard == "v23")

    def _place(self, port: int, number: str, key: str, now: float) -> None:
        target = self.extensions.get(number)
        line = self.lines[port]
        if target is not None:
            self._local_call(port, key, target, now)
        elif self.agent is not None:
            leg = self._new_leg("sip", "", port, key)
            self._legs[key] = leg
            self._spawn(self._sip_call(leg, number), f"call port {port + 1}")
        else:
            _log.info("port %d: %s is no extension here and there is no PBX", port + 1, number)
            self._soon(port, lambda: line.ended("no route", 404, self.board.now(), call=key))

    def _soon(self, port: int, step: Callable[[], list[Action]]) -> None:
        """Feed a port from the loop, not from inside the action list being executed."""
        asyncio.get_running_loop().call_soon(lambda: self._run(port, step()))

    async def _sip_call(self, leg: _Leg, number: str, replaces: Replaces | None = None) -> None:
        assert self.agent is not None
        leg.bound = asyncio.ensure_future(self._bind(leg, self._media_host()))
        media = await leg.bound
        if self._legs.get(leg.key) is not leg and leg.replacing is None:
            return
        leg.id = self.agent.place_call(str(leg.port), number, media, replaces=replaces)
        self._by_call[leg.id] = leg

    def _local_call(self, port: int, key: str, target: int, now: float) -> None:
        self._seq += 1
        call_id = f"local-{self._seq}"
        caller = self.config.ports[port]
        actions = self.lines[target].incoming(call_id, caller.extension, caller.display_name or None, now)
        if any(isinstance(a, Reject) for a in actions):  # in use (or our own number): busy
            self._soon(port, lambda: self.lines[port].ended("busy", 486, self.board.now(), call=key))
            return
        mine = self._new_leg("local", call_id, port, key, peer=target, peer_key=call_id)
        theirs = self._new_leg("local", call_id, target, call_id, peer=port, peer_key=key)
        for leg in (mine, theirs):
            self._legs[leg.key] = leg
            leg.bound = asyncio.ensure_future(self._bind(leg, LOOPBACK))
        self._run(target, actions)
        self._soon(port, lambda: self.lines[port].progress(180, False, self.board.now(), call=key))

    async def _bind(self, leg: _Leg, host: str) -> Address:
        addr = await self.clock.bind(leg.owner, host)
        if self._legs.get(leg.key) is not leg and leg.replacing is None:
            self.clock.unbind(leg.owner)  # the call ended while we bound
        return addr

    def _media_host(self) -> str:
        assert self.agent is not None
        return self.agent.local_addr[0]

    def _answer(self, leg: _Leg) -> None:
        if leg.kind == "local":
            peer, key = leg.peer, leg.peer_key
            assert peer is not None
            self._soon(peer, lambda: self.lines[peer].answered(self.board.now(), call=key))
            return

        async def answer() -> None:
            assert self.agent is not None and leg.bound is not None
            media = await leg.bound
            if self._legs.get(leg.key) is leg:
                self.agent.answer(leg.id, media)
        self._spawn(answer(), f"answer port {leg.port + 1}")

    def _hangup(self, leg: _Leg) -> None:
        if leg.kind == "local":
            peer, key = leg.peer, leg.peer_key
            assert peer is not None
            self._soon(peer, lambda: self.lines[peer].ended("remote hangup", None, self.board.now(),
                                                            call=key))
        elif self.agent is not None and leg.id:
            self._by_call.pop(leg.id, None)
            self.agent.hangup(leg.id)

    def _hold(self, leg: _Leg, hold: bool) -> None:
        """Re-INVITE sendonly / sendrecv (RFC 3264 §8.4) for a SIP call; a local call is held by its
        media alone (DisconnectMedia), the other port hears silence."""
        if leg.kind != "sip" or self.agent is None or not leg.id:
            return
        try:
            (self.agent.hold if hold else self.agent.resume)(leg.id)
        except CallError as exc:  # e.g. our previous re-INVITE still pending (RFC 3261 §14.1)
            _log.warning("port %d: %s failed: %s", leg.port + 1, "hold" if hold else "resume", exc)

    def _reject(self, action: Reject) -> None:
        if self.agent is not None:  # local calls never reach a busy port (see _local_call)
            self.agent.reject(action.call_id, action.status)

    def _start_media(self, leg: _Leg) -> None:
        if not leg.want_media or leg.media_on:
            return
        port = leg.port
        if self.clock.unpark(port, leg.owner, second=self._has_media(leg)) is not None:
            leg.media_on = True  # resumed: the same RTP stream goes on
            return
        if leg.kind == "sip":
            if leg.negotiated is not None:
                leg.media_on = True
                self.clock.start_session(port, leg.negotiated, owner=leg.owner, second=self._has_media(leg))
            return
        peer = self._legs.get(leg.peer_key)
        if peer is None or peer.bound is None or leg.bound is None:
            return
        leg.media_on = True
        mine, theirs = leg.bound, peer.bound

        async def connect() -> None:
            await mine
            remote = await theirs
            if self._legs.get(leg.key) is leg and leg.media_on:
                self.clock.start_session(port, _loopback(remote), owner=leg.owner,
                                         second=self._has_media(leg))
        self._spawn(connect(), f"media port {port + 1}")

    def _has_media(self, leg: _Leg) -> bool:
        """Whether another call of `leg`'s port has a session already (this one is a conference leg)."""
        return any(o.port == leg.port and o is not leg and self.clock.session(o.owner) is not None
                   for o in self._legs.values())

    # -- transfer -------------------------------------------------------------------------------
    def _transfer(self, action: Transfer) -> None:
        """REFER the held party to the consultation's number: blind (the ringing consultation is
        cancelled first) or attended (Replaces of the answered consultation, RFC 3891). Both legs
        end when the transfer reports its outcome. Between local (intercom) legs there is no REFER:
        transfer is not built for them, both calls are released."""
        held, target = self._legs.get(action.held), self._legs.get(action.target)
        legs = [leg for leg in (held, target) if leg is not None]
        usable = (self.agent is not None and held is not None and target is not None
                  and held.kind == "sip" and bool(held.id) and (target.kind == "sip" or not action.attended))
        if not usable or held is None or target is None or self.agent is None:
            _log.info("transfer of %s is not possible here: releasing the calls", action.held)
            for leg in legs:
                self._hangup(leg)
            return
        held.transfer = True
        try:
            if action.attended and target.id:
                target.transfer = True
                self.agent.refer(held.id, action.number, replacing=target.id)
            else:
                self._hangup(target)
                self.agent.refer(held.id, action.number)
        except CallError as exc:
            _log.warning("transfer failed: %s", exc)
            for leg in legs:
                leg.transfer = False
                self._hangup(leg)

    def _transfer_event(self, leg: _Leg, event: Event) -> None:
        """Our REFER reports: once final (the transferee's new call answered or failed), end the
        legs we kept for it. (A failed transfer ends them too: the held party is not called back.)"""
        if isinstance(event, TransferProgress):
            _log.info("port %d: transfer %s", leg.port + 1, event.status)
            if event.final:
                self._release_transfer(leg.port)
        elif isinstance(event, CallEnded):  # e.g. the transferee hung up before its final NOTIFY
            self._by_call.pop(event.call, None)
            leg.transfer = False
            self._release_transfer(leg.port)

    def _release_transfer(self, port: int) -> None:
        for leg in [o for o in self._by_call.values() if o.transfer and o.port == port]:
            leg.transfer = False
            self._hangup(leg)

    def _follow_refer(self, leg: _Leg, event: TransferRequested) -> None:
        """The far end transfers us (RFC 3515): call the Refer-To target (with its Replaces, RFC
        3891) on the same port; the new call takes the old one's place once answered."""
        new = self._new_leg("sip", "", leg.port, leg.key, replacing=leg)
        self._spawn(self._sip_call(new, event.target, event.replaces), f"transfer port {leg.port + 1}")

    def _referred_event(self, new: _Leg, old: _Leg, event: Event, now: float) -> None:
        assert self.agent is not None
        if isinstance(event, CallProgress):
            reason = "Ringing" if event.status == 180 else "Session Progress"
            self.agent.transfer_progress(old.id, event.status, reason)
        elif isinstance(event, CallAnswered):
            new.negotiated, new.replacing = event.negotiated, None
            media = old.want_media
            self.clock.end_session(old.port, owner=old.owner)  # attached, parked or only bound
            self.agent.transfer_progress(old.id, 200, "OK")
            self._by_call.pop(old.id, None)
            self.agent.hangup(old.id)
            self._legs[new.key] = new
            new.want_media = media
            self._start_media(new)
        elif isinstance(event, CallEnded):
            self._by_call.pop(event.call, None)
            self.clock.unbind(new.owner)
            status = event.status if event.status is not None and event.status >= 300 else 503
            self.agent.transfer_progress(old.id, status, event.reason[:60] or "Failed")

    def _call_over(self, port: int, over: CallOver, now: float) -> None:
        leg = self._legs.pop(over.call, None)
        stats = None
        if leg is not None:
            stats = self.clock.end_session(port, owner=leg.owner)
            if leg.kind == "sip" and leg.id and not leg.transfer:
                self._by_call.pop(leg.id, None)
        own = self.config.ports[port].extension
        wall = time.time() - now  # port clock -> Unix time
        direction: Literal["in", "out", "local"] = "local" if leg is not None and leg.kind == "local" \
            else over.direction
        caller, callee = (own, over.remote) if over.direction == "out" else (over.remote, own)
        answer = None if over.answer is None else wall + over.answer
        record = CallRecord(port=port, direction=direction, caller=caller, callee=callee,
                            start=wall + over.start, answer=answer, end=wall + over.end,
                            cause=over.cause, stats=stats)
        if self.history is not None:
            self.history.add(record)
        _log.info("port %d: call %s %s -> %s ended (%s)", port + 1, direction, caller, callee, over.cause)

    # -- for the console and the status page -----------------------------------------------------
    def status(self) -> list[tuple[int, str, State]]:
        """(port, extension, call state) of every configured port."""
        return [(p, self.config.ports[p].extension, line.state) for p, line in self.lines.items()]


PRIVACY_HIDING_ID = frozenset({"id", "user", "header"})
"""Privacy values that withhold the caller's identity: RFC 3325 §9.3 'id', RFC 3323 §4.2 'user' and
'header' (a gateway toward the phone network shows the caller as private, not the number)."""
ANONYMOUS_HOST = "anonymous.invalid"
_NUMBER = re.compile(r"\+?[0-9]+")


@dataclass(frozen=True)
class SipCaller:
    """What the phone's caller-ID display gets for an incoming SIP call."""

    number: str
    """Digits only, '' when there is none (GR-30-CORE numbers are digits: a leading '+' is dropped)."""
    name: str | None
    private: bool
    """Withheld by the caller: number and name are sent as absence 'P'; otherwise a missing one is 'O'."""


def sip_caller(event: IncomingCall) -> SipCaller:
    """Caller ID of an INVITE: the number from P-Asserted-Identity (RFC 3325 §9.1), else From; the
    display name of the same header, else From's. `Privacy: id|user|header` (RFC 3323 §4.2, RFC 3325
    §9.3) or an anonymous From (RFC 3323 §4.1.1.3) make the call private. A URI whose user part is no
    telephone number ('unknown', 'alice', empty) gives no number (absence 'O')."""
    privacy = {v.strip().lower() for v in re.split(r"[;,]", event.privacy or "")}
    from_uri = _parse(event.from_uri)
    if privacy & PRIVACY_HIDING_ID or (isinstance(from_uri, SipUri) and _anonymous(from_uri)):
        return SipCaller("", None, True)
    identities: list[tuple[Uri | None, str | None]] = []
    if event.asserted_identity:
        with contextlib.suppress(HeaderError, UriError):
            identities += [(a.uri, a.display_name) for a in parse_name_addr_list(event.asserted_identity)]
    identities.append((from_uri, event.display_name))
    number = next((n for uri, _ in identities if (n := _number(uri))), "")
    name = next((d.strip() for _, d in identities if d and d.strip()), None)
    return SipCaller(number, name, False)


ALERT_INFO_NAMES = {"alert-internal": "bellcore-dr2", "alert-external": "normal"}
"""Alert-Info `info=` names that are no cadence name themselves (BroadSoft/Polycom/Cisco convention:
internal calls ring long-long, GR-506 distinctive pattern 2)."""
_BELLCORE_NAME = re.compile(r"bellcore-d?r([1-5])")
"""'Bellcore-dr2' (Asterisk/FreePBX, Polycom) and 'Bellcore-r2' (Cisco/Linksys SPA) name GR-506 pattern 2."""


def alert_info_cadence(alert_info: str | None, country_code: str, default: str) -> str:
    """The ring cadence name for an INVITE's Alert-Info (RFC 3261 §20.4), or `default` (the port's).

    Each alert-param is `<URI>;info=name` or, from some PBXes, a bare name; the name is the `info`
    parameter, else the URI's last path segment (`<http://127.0.0.1/Bellcore-dr2>`), else the bare
    text. The first one that names a cadence of `dsp.tones.ring_cadence` wins; URIs of ring-tone files
    and unknown names are ignored (we cannot fetch and play a ring tone on a bell)."""
    for element in _split_alert_info(alert_info or ""):
        if element.startswith("<"):
            uri, _, params = element[1:].partition(">")
            bare = uri.rstrip("/").rsplit("/", 1)[-1]
        else:
            params, bare = ";" + element, element.split(";")[0]
        names = [v.strip().strip('"') for k, _, v in (p.partition("=") for p in params.split(";"))
                 if k.strip().lower() == "info"]
        for raw in [*names, bare]:
            name = raw.strip().lower()
            if (m := _BELLCORE_NAME.fullmatch(name)) is not None:
                name = f"bellcore-dr{m.group(1)}"
            name = ALERT_INFO_NAMES.get(name, name)
            try:
                ring_cadence(name, country_code)
            except KeyError:
                continue
            return default if name == "normal" else name
    return default


def _split_alert_info(value: str) -> list[str]:
    try:
        return split_list(value)
    except HeaderError:
        return []


def _parse(text: str) -> Uri | None:
    try:
        return parse_uri(text.strip().strip("<>"))
    except UriError:
        return None


def _anonymous(uri: SipUri) -> bool:
    return (uri.user or "").lower() == "anonymous" or uri.host.lower() == ANONYMOUS_HOST


def _number(uri: Uri | None) -> str:
    """The digits of a telephone-number user part or tel URI (visual separators dropped), or ''."""
    if isinstance(uri, TelUri):
        text = uri.number
    elif isinstance(uri, SipUri) and uri.user:
        text = uri.user.split(";")[0]
    else:
        return ""
    text = re.sub(r"[\-.() ]", "", text)
    return text.lstrip("+") if _NUMBER.fullmatch(text) else ""


def _loopback(remote: Address) -> Negotiated:
    """What an offer/answer between two local ports would agree: PCMU, RFC 4733 events, 20 ms."""
    host, port = remote
    return Negotiated(codec="PCMU", payload_type=PCMU, clock_rate=8000, telephone_event_pt=TELEPHONE_EVENT,
                      ptime=PTIME, remote_addr=host, remote_port=port, remote_rtcp=(host, port + 1),
                      direction="sendrecv", srtp=None)


async def serve(config: Config, *, ready: Callable[[Gateway], None] | None = None,
                console: bool = False) -> None:
    """Run the gateway until SIGINT/SIGTERM; `ready` is called once it runs."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    gateway = Gateway(config)
    reader = None
    try:
        await gateway.start()
        if console:
            from firmware.console import Console

            reader = Console(gateway, stop)
            reader.attach()
        if ready is not None:
            ready(gateway)
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if reader is not None:
            reader.detach()
        await gateway.stop()
