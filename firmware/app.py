"""The gateway: the one place that knows every part (DESIGN.md "The house").

It opens the board, runs the media clock, starts a SIP agent when a registrar is configured (one
account per enabled port, named by the port index), keeps one `PortLine` per configured port and
executes what they ask. A number that is another port's extension is connected locally (intercom):
the callee rings with the caller's extension and display name as caller ID, and once answered the
two ports talk real RTP to each other over 127.0.0.1 (PCMU, telephone-event 101, 20 ms), so a local
call goes through the same media path as a PBX call. Without a registrar only intercom calls exist.
A PBX call's caller ID comes from its identity headers (`sip_caller`) and its ring cadence from
Alert-Info (`alert_info_cadence`). Each port has its dial-side features (`firmware.line.features`);
what the phone programs by star code is kept in `data_dir`/features.db. A forwarded PBX call is
answered 302; a forwarded intercom call is followed here, as a SIP caller would follow the 302.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from dsp.callerid import Absence, generate_alert, generate_callerid, generate_dtmf_callerid, generate_vmwi
from dsp.tone_table import cad
from dsp.tones import Tone, country, generate_tone, ring_cadence, tone
from firmware.config import Config, PortConfig
from firmware.config.schema import account_name, account_port
from firmware.line.dialplan import DialPlan
from firmware.line.features import Features
from firmware.line.port import (
    Action,
    Answer,
    CallOver,
    CallWaitingAlert,
    ConnectMedia,
    DisconnectMedia,
    FlashFeatures,
    Forward,
    Hangup,
    Hold,
    PlaceCall,
    PlayTone,
    PortLine,
    Reject,
    Resume,
    Ring,
    SaveFeatures,
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
from firmware.sip.presence import CallState, Direction, PortDialog
from firmware.sip.refer import Replaces
from firmware.sip.sdp import Negotiated
from firmware.sip.ua import (
    AccountConfig,
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
from firmware.store.features import FeatureStore
from firmware.store.history import CallHistory, CallRecord
from hal.backends import open_board
from hal.board import Board
from hal.events import HookEvent
from hal.line import AlertMode

if TYPE_CHECKING:
    from web.logring import LogRing

_log = logging.getLogger("hookflash")

LOOPBACK = "127.0.0.1"
PCMU = 0
TELEPHONE_EVENT = 101
PTIME = 20
PRESENCE_STATES: dict[State, CallState] = {
    State.DIALTONE: "trying", State.COLLECTING: "trying", State.CALLING: "trying",
    State.RINGING: "early", State.CONNECTED: "confirmed", State.HELD: "confirmed",
    State.CONFERENCE: "confirmed", State.DISCONNECT: "terminated",
    State.TONE: "terminated", State.HOWLER: "terminated", State.LOCKOUT: "terminated"}
"""The port's state as an RFC 4235 dialog state (IDLE: no dialog). Off hook counts as busy from the
first dial tone, as a busy lamp should show; a call that ended leaves the line off hook: terminated."""
MAX_FORWARDS = 5
"""Forwarding hops an intercom call follows before it is refused (a loop of ports forwarding to
each other must end; RFC 3261 §16.6 uses Max-Forwards for the same reason)."""
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
class _CallInfo:
    """What the status page shows of a port's call: the other party and since when it talks."""

    peer: str
    connected: float | None = None
    """Unix time of the answer, None while it is still being set up."""


@dataclass(frozen=True)
class Applied:
    """What `Gateway.apply_config` did."""

    reconfigured: tuple[int, ...]
    """Ports (0-based) whose line was re-created and/or SIP account re-registered now."""
    deferred: tuple[int, ...]
    """Ports in a call: they keep the call and take their new settings when it ends."""
    sip_restarted: bool
    """The SIP server settings changed: the agent was restarted (its calls ended, all re-register)."""
    restart_required: tuple[str, ...]
    """Settings that only a restart applies (the board, the data directory, the web listener)."""


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
    account: str = ""
    """The SIP account the call is on (config.schema.account_name), '' for a local call."""


class Gateway:
    """Everything that runs while `hookflash run` runs; `start()`, then `stop()` (idempotent)."""

    def __init__(self, config: Config, *, board: Board | None = None) -> None:
        self.config = config
        self.country = config.regional.country
        self.board = board if board is not None else open_board(config.to_board_config())
        self.pipeline = Pipeline(self.board.ports)
        self.clock = MediaClock(self.board, self.pipeline, on_hook=self._on_hook, on_tick=self._on_tick)
        self.lines: dict[int, PortLine] = {}
        self.extensions: dict[str, int] = {}
        self.feature_store: FeatureStore | None = None
        for index in range(min(len(config.ports), self.board.ports)):
            self._make_line(index)
        self.started = time.time()
        self.registration: dict[int, tuple[str, str | None]] = {}
        """Per port: the registration state (RegState value) and its last error."""
        self._calls: dict[int, _CallInfo] = {}
        self._deferred: set[int] = set()
        """Ports whose new settings wait for their call to end (`apply_config`)."""
        self._subscribers: list[Callable[[dict[str, Any]], None]] = []
        self._published: dict[int, dict[str, Any]] = {}
        self._accounts: dict[str, AccountConfig] = {}
        """The SIP accounts (by name) in the running agent."""
        self.agent: SipAgent | None = None
        self.history: CallHistory | None = None
        self._presence: dict[int, PortDialog | None] = {}
        self._dialog_ids = 0
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
        self.feature_store = FeatureStore(self.config.system.features_db)
        for port, line in self.lines.items():  # what the phone programmed wins over the config
            if line.features is not None and (state := self.feature_store.load(port)) is not None:
                line.features.state = state
        self._clock_task = asyncio.create_task(self.clock.run(), name="media-clock")
        await self._start_agent()
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
        if self.feature_store is not None:
            self.feature_store.close()
        _log.info("gateway stopped")

    async def _start_agent(self) -> None:
        if self.config.intercom_only:
            return
        for port in self._sip_ports():
            self.registration[port] = ("registering", None)
        agent_config = self.config.to_agent_config()
        self._accounts = {a.name: a for a in agent_config.ua.accounts}
        self.agent = SipAgent(agent_config, on_event=self._on_sip)
        try:
            await self.agent.start()
        except BaseException:
            self.agent = None
            raise

    def _sip_ports(self) -> list[int]:
        ports = self.config.ports[:self.board.ports]
        return [p for p, cfg in enumerate(ports) if cfg.enabled]

    def _make_line(self, index: int) -> None:
        """(Re-)create port `index`'s call state machine from the current config (idle ports only);
        what the phone programmed by star code (the feature store) wins over the config."""
        self.lines.pop(index, None)
        port = self.config.ports[index] if index < len(self.config.ports) else None
        if port is not None and port.enabled and index < self.board.ports:
            features = Features(self.config.port_features(index), self.config.port_feature_state(index))
            flash = FlashFeatures(port.call_waiting, port.three_way, port.transfer)
            if self.feature_store is not None and (state := self.feature_store.load(index)) is not None:
                features.state = state
            self.lines[index] = PortLine(index, DialPlan.parse(port.dial_plan),
                                         frozenset(country(self.country).tones),
                                         hotline=port.hotline, polarity_reversal=port.polarity_reversal,
                                         flash=flash, features=features)
        self.extensions = {p.extension: i for i, p in enumerate(self.config.ports[:self.board.ports])
                           if p.enabled}
        self._set_gains(index)

    def _set_gains(self, index: int) -> None:
        """Port `index`'s rx/tx gains from the current config into the pipeline (0 dB when unset)."""
        if index < self.board.ports:
            port = _port_at(self.config, index)
            self.pipeline.set_gains(index, port.rx_gain_db if port else 0.0, port.tx_gain_db if port else 0.0)

    # -- live reconfiguration -------------------------------------------------------------------
    async def apply_config(self, new: Config) -> Applied:
        """Run with `new` from now on, disturbing as little as possible: only ports whose settings
        changed are re-created and re-register; calls on other ports continue. A changed port that is
        in a call keeps it and takes its new settings once it is idle again (`Applied.deferred`).
        A change to the SIP server settings restarts the SIP agent (its calls end; intercom calls
        continue). Gains apply at once on every port, calls or not (they touch no call state).
        Board, data directory and web listener changes need a restart (reported)."""
        old = self.config
        restart = tuple(name for name, changed in (
            ("hardware", new.hardware != old.hardware),
            ("system.data_dir", new.system.data_dir != old.system.data_dir),
            ("web", new.web != old.web)) if changed)
        if new.system.log_level != old.system.log_level:
            logging.getLogger().setLevel(new.system.log_level.upper())
        count = self.board.ports
        changed = {p for p in range(count) if _line_settings(old, p) != _line_settings(new, p)}
        if (new.regional.country, new.star_codes, new.restriction_classes) != \
                (old.regional.country, old.star_codes, old.restriction_classes):
            changed |= set(range(count))  # every line holds the country's tones and the codes
        self.config, self.country = new, new.regional.country
        for port in range(count):  # media only: a call in progress hears the new gains at once
            self._set_gains(port)
        sip_restart = new.sip != old.sip
        if sip_restart and self.agent is not None:
            agent, self.agent = self.agent, None
            self.registration.clear()
            await agent.stop()  # ends its calls (the lines hear CallEnded) and unregisters
        now_ports = tuple(sorted(p for p in changed if self._idle(p)))
        deferred = tuple(sorted(p for p in changed if not self._idle(p)))
        for port in now_ports:
            self._reconfigure(port, sip_restart)
        self._deferred = (self._deferred | set(deferred)) - set(now_ports)
        if sip_restart:
            try:
                await self._start_agent()
            except OSError as exc:  # e.g. the new local port is taken: say so on the status page
                _log.error("SIP cannot start with the new settings: %s", exc)
                for port in self._sip_ports():
                    self.registration[port] = ("failed", f"SIP cannot start: {exc}")
        _log.info("configuration applied: ports %s now, %s after their calls%s%s",
                  [p + 1 for p in now_ports] or "none", [p + 1 for p in deferred] or "none",
                  ", SIP agent restarted" if sip_restart else "",
                  f"; needs a restart: {', '.join(restart)}" if restart else "")
        for port in range(count):
            self._publish(port)
        return Applied(now_ports, deferred, sip_restart, restart)

    def _idle(self, port: int) -> bool:
        """No call at all on `port`: none on the line, none kept for a transfer or placed for a REFER."""
        line = self.lines.get(port)
        busy = any(leg.port == port for leg in (*self._legs.values(), *self._by_call.values()))
        return not busy and (line is None or line.state is State.IDLE)

    def _reconfigure(self, port: int, sip_restart: bool) -> None:
        """Apply the current config to idle `port`: a new line and, unless the whole agent is being
        restarted anyway, its SIP account re-registered (without un-REGISTER when the AOR stays)."""
        self._make_line(port)
        if self.agent is None or sip_restart:
            return
        before = {n: a for n, a in self._accounts.items() if account_port(n)[0] == port}
        after = _accounts_at(self.config, port)
        for name in sorted(before.keys() | after.keys()):
            old, new = before.get(name), after.get(name)
            if old == new:
                continue
            if old is not None:
                self.agent.remove_account(name, unregister=new is None or new.user != old.user)
                del self._accounts[name]
            if new is not None:
                self._accounts[name] = new
                self.agent.add_account(new)
        if before.get(account_name(port)) != after.get(account_name(port)):
            self.registration.pop(port, None)
            if account_name(port) in after:
                self.registration[port] = ("registering", None)

    def _apply_deferred(self, port: int) -> None:
        if port in self._deferred and self._idle(port):
            self._deferred.discard(port)
            self._reconfigure(port, False)
            self._publish(port)

    # -- status and events (the web page) -------------------------------------------------------
    def port_status(self, port: int) -> dict[str, Any]:
        """One port as the status page and `GET /api/v1/status` show it (`port` counts from 1)."""
        cfg = _port_at(self.config, port)
        line, board_line = self.lines.get(port), self.board.lines[port]
        state, error = self.registration.get(port, ("intercom" if self.agent is None else "unregistered",
                                                     None))
        call = self._calls.get(port)
        return {
            "port": port + 1,
            "extension": cfg.extension if cfg else None,
            "display_name": cfg.display_name if cfg else "",
            "enabled": line is not None,
            "registered": state == "registered",
            "registration": state,
            "registration_error": error,
            "hook": "off" if board_line.offhook else "on",
            "call": line.state.value if line is not None else "disabled",
            "peer": call.peer if call else None,
            "connected_since": call.connected if call else None,
            "message_waiting": bool(line and line.message_waiting),
            "pending_config": port in self._deferred,
        }

    def snapshot(self) -> dict[str, Any]:
        """Every port's status, for a page or a WebSocket client that just connected."""
        return {"ports": [self.port_status(p) for p in range(self.board.ports)],
                "backend": self.config.hardware.backend, "started": self.started,
                "sip": "intercom" if self.config.intercom_only else self.config.sip.registrar}

    def subscribe(self, callback: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Call `callback(port_status)` whenever a port's status changes (registration, hook, call
        state, peer); returns the function that unsubscribes. Callbacks must not block."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def _publish(self, port: int) -> None:
        if port >= self.board.ports:
            return
        status = self.port_status(port)
        if self._published.get(port) == status:
            return
        self._published[port] = status
        for callback in list(self._subscribers):
            try:
                callback(status)
            except Exception:
                _log.exception("status subscriber failed")

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
            self._publish(event.port)

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
            where, index = account_port(event.account)
            _log.info("port %s%s registration: %s%s", where + 1, f" account {index + 1}" if index else "",
                      event.state, f" ({event.error})" if event.error else "")
            if index == 0:  # a port's status shows its own account
                self.registration[where] = (event.state.value, event.error)
                self._publish(where)
        elif isinstance(event, IncomingCall):
            self._incoming_sip(event, now)
        elif isinstance(event, MessageWaiting):
            mailbox = account_port(event.account)[0]
            if (line := self.lines.get(mailbox)) is not None:
                self._run(mailbox, line.mwi(event.waiting, now))
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
        port, index = account_port(event.account)
        line = self.lines.get(port)
        if line is None:
            self.agent.reject(event.call, 404)
            return
        caller = sip_caller(event)
        own = self.config.port_ring_cadence(port, index)  # the called account's cadence
        cadence = alert_info_cadence(event.alert_info, self.country, own)
        actions = line.incoming(event.call, caller.number, caller.name, now, private=caller.private,
                                cadence=cadence)
        if not any(isinstance(a, Reject | Forward) for a in actions):
            leg = self._new_leg("sip", event.call, port, event.call, account=event.account)
            leg.bound = asyncio.ensure_future(self._bind(leg, self._media_host()))
            self._legs[leg.key] = self._by_call[event.call] = leg
            self.agent.ringing(event.call)
        self._run(port, actions)

    # -- actions --------------------------------------------------------------------------------
    def _run(self, port: int, actions: list[Action]) -> None:
        for action in actions:
            _log.debug("port %d: %s", port + 1, action)
            self._execute(port, action)
            if isinstance(action, PlaceCall):
                self._calls[port] = _CallInfo(action.number)
            elif isinstance(action, Ring):
                self._calls[port] = _CallInfo(action.caller_number or action.caller_name or "")
        line = self.lines.get(port)
        info = self._calls.get(port)
        if line is None or line.state is State.IDLE:
            self._calls.pop(port, None)
        elif info is not None and info.connected is None and line.state is State.CONNECTED:
            info.connected = time.time()
        self._apply_deferred(port)
        self._publish(port)
        self._offer_presence(port)

    def _offer_presence(self, port: int) -> None:
        """Tell the port's dialog-package watchers (busy lamps, RFC 4235) when its state changed."""
        line = self.lines.get(port)
        if self.agent is None or line is None:
            return
        state = PRESENCE_STATES.get(line.state)
        shown = self._presence.get(port)
        if state is None:
            dialog = None
        elif shown is not None:  # the same call moves on; once terminated it stays so until idle
            dialog = shown if shown.state == "terminated" else PortDialog(shown.id, state, shown.direction)
        else:
            self._dialog_ids += 1
            direction: Direction = "recipient" if line.state is State.RINGING else "initiator"
            dialog = PortDialog(f"port{port + 1}-{self._dialog_ids}", state, direction)
        if dialog != shown:
            self._presence[port] = dialog
            for index in range(len(self.config.ports[port].accounts) + 1):  # the phone is busy on each
                self.agent.set_presence(account_name(port, index), dialog)

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
            self._place(port, action.number, action.call, now, anonymous=action.anonymous,
                        account=action.account)
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
        elif isinstance(action, Forward):
            self._forward(action, self._legs.get(action.call_id), now)
        elif isinstance(action, SaveFeatures):
            if self.feature_store is not None:
                self.feature_store.save(port, action.state)
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

    def _forward(self, forward: Forward, leg: _Leg | None, now: float) -> None:
        """A PBX call is answered 302; an intercom call forwarded on no answer moves its caller on to
        the target (offered intercom calls are followed in `_local_call`)."""
        if leg is None or leg.kind == "sip":
            if self.agent is not None:
                self.agent.redirect(forward.call_id, forward.target)
            return
        mine = self._legs.pop(leg.peer_key, None)
        if mine is None:
            return
        self.clock.unbind(mine.owner)  # its leg toward this port is over; the new call binds afresh
        self._place(mine.port, forward.target, mine.key, now, hops=1)

    def _tone(self, name: str) -> Tone:
        if name == "confirmation":  # GR-506 confirmation tone: three 0.1 s bursts of dial tone
            dial = tone(self.country, "dial")
            return Tone("confirmation", dial.components, cad(100, 100, 100, 100, 100, 100), repeat=False)
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

    def _place(self, port: int, number: str, key: str, now: float, *, anonymous: bool = False,
               hops: int = 0, account: int = 0) -> None:
        target = self.extensions.get(number)
        line = self.lines[port]
        if target is not None:
            self._local_call(port, key, target, now, anonymous=anonymous, hops=hops)
        elif self.agent is not None:
            leg = self._new_leg("sip", "", port, key)
            self._legs[key] = leg
            self._spawn(self._sip_call(leg, number, anonymous=anonymous, account=account),
                        f"call port {port + 1}")
        else:
            _log.info("port %d: %s is no extension here and there is no PBX", port + 1, number)
            self._soon(port, lambda: line.ended("no route", 404, self.board.now(), call=key))

    def _soon(self, port: int, step: Callable[[], list[Action]]) -> None:
        """Feed a port from the loop, not from inside the action list being executed."""
        asyncio.get_running_loop().call_soon(lambda: self._run(port, step()))

    async def _sip_call(self, leg: _Leg, number: str, *, anonymous: bool = False,
                        replaces: Replaces | None = None, account: int = 0) -> None:
        """Place `leg`'s call: a dialled number goes out on the extra `account` its star code chose, else
        on the one its prefix picks; the call a REFER asked for (`leg.replacing`) on the account of the
        call it replaces, to the Refer-To URI."""
        assert self.agent is not None
        leg.bound = asyncio.ensure_future(self._bind(leg, self._media_host()))
        media = await leg.bound
        if self._legs.get(leg.key) is not leg and leg.replacing is None:
            return
        if leg.replacing is not None:
            leg.account = leg.replacing.account
        else:
            leg.account, number = self.config.outgoing_account(leg.port, number, account)
        leg.id = self.agent.place_call(leg.account, number, media, anonymous=anonymous, replaces=replaces)
        self._by_call[leg.id] = leg

    def _local_call(self, port: int, key: str, target: int, now: float, *, anonymous: bool = False,
                    hops: int = 0) -> None:
        self._seq += 1
        call_id = f"local-{self._seq}"
        caller = self.config.ports[port]
        number, name = ("", None) if anonymous else (caller.extension, caller.display_name or None)
        actions = self.lines[target].incoming(call_id, number, name, now, private=anonymous)
        forward = next((a for a in actions if isinstance(a, Forward)), None)
        if forward is not None and hops < MAX_FORWARDS:  # follow it, as a SIP caller follows a 302
            self._place(port, forward.target, key, now, anonymous=anonymous, hops=hops + 1)
            return
        status = next((a.status for a in actions if isinstance(a, Reject)), 482 if forward else None)
        if status is not None:  # in use (or our own number): busy; do not disturb: 480
            self._soon(port, lambda: self.lines[port].ended("rejected", status, self.board.now(), call=key))
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
        self._apply_deferred(port)  # settings that waited for the port's calls to end

    def _follow_refer(self, leg: _Leg, event: TransferRequested) -> None:
        """The far end transfers us (RFC 3515): call the Refer-To target (with its Replaces, RFC
        3891) on the same port; the new call takes the old one's place once answered."""
        new = self._new_leg("sip", "", leg.port, leg.key, replacing=leg)
        self._spawn(self._sip_call(new, event.target, replaces=event.replaces),
                    f"transfer port {leg.port + 1}")

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


def _port_at(config: Config, index: int) -> PortConfig | None:
    return config.ports[index] if index < len(config.ports) else None


def _line_settings(config: Config, index: int) -> PortConfig | None:
    """Port `index`'s settings that need its line re-made: all but the gains (`_set_gains`)."""
    port = _port_at(config, index)
    return None if port is None else replace(port, rx_gain_db=0.0, tx_gain_db=0.0)


def _accounts_at(config: Config, index: int) -> dict[str, AccountConfig]:
    """Port `index`'s SIP accounts by name under `config` (none: disabled, or no registrar)."""
    if config.intercom_only:
        return {}
    return {a.name: a for a in config.to_ua_config().accounts if account_port(a.name)[0] == index}


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


async def serve(config: Config, *, config_path: Path | None = None,
                ready: Callable[[Gateway], None] | None = None, console: bool = False) -> None:
    """Run the gateway until SIGINT/SIGTERM; `ready` is called each time it runs. With `config_path`
    and `[web] enabled`, the web page serves it too (it saves to that file); a restart asked from the
    web page stops everything and starts again from the file."""
    from firmware.config import ConfigError, load_config

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    restart = False

    def request_restart() -> None:
        nonlocal restart
        restart = True
        loop.call_later(0.3, stop.set)  # let the page that asked get its answer first

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    logs = None
    if config_path is not None and config.web.enabled:
        from web.logring import LogRing

        logs = LogRing()
        logging.getLogger().addHandler(logs)
    try:
        while True:
            await _serve_once(config, config_path, logs, stop, request_restart, ready, console)
            if not restart:
                return
            assert config_path is not None
            restart = False
            stop.clear()
            try:
                config = load_config(config_path)
            except ConfigError as exc:  # edited by hand since: keep running what we had
                _log.error("restart: %s is invalid, keeping the running configuration: %s", config_path, exc)
            _log.info("restarting")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if logs is not None:
            logging.getLogger().removeHandler(logs)


async def _serve_once(config: Config, config_path: Path | None, logs: LogRing | None, stop: asyncio.Event,
                      restart: Callable[[], None], ready: Callable[[Gateway], None] | None,
                      console: bool) -> None:
    from firmware.config import ConfigStore

    gateway = Gateway(config)
    reader = None
    stop_web: Callable[[], Awaitable[None]] | None = None
    try:
        await gateway.start()
        if logs is not None and config_path is not None:
            from web.server import start_web

            stop_web = await start_web(gateway, ConfigStore(config_path), logs, restart)
        if console:
            from firmware.console import Console

            reader = Console(gateway, stop)
            reader.attach()
        if ready is not None:
            ready(gateway)
        await stop.wait()
    finally:
        if reader is not None:
            reader.detach()
        if stop_web is not None:
            await stop_web()
        await gateway.stop()
