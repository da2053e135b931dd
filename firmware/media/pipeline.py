"""The 20 ms media tick for every port at once (DESIGN.md, "One 20 ms tick").

Per tick, numpy over all ports: echo cancellation (G.168) of what we played last tick out of what we
read, DTMF detection, fax/modem tone detection (T.30 CNG, V.25 ANS/CED), in-band DTMF suppression
for ports relaying RFC 4733, G.711 encode (grouped by codec), G.711 decode and G.711 Appendix I
concealment, call-progress tones, one-shot clips (call-waiting alert and caller ID), a three-way
conference's second session (firmware.media.conference), per-port gains (`set_gains`), level
meters. Python loops over ports run only where a per-call object must be asked (`MediaSession`:
packets in and out), and only for ports in a call.

The pipeline is sans-IO: `tick(frames, now)` returns the earpiece frames and the datagrams to send;
`MediaClock` moves them between the board, the sockets and the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from dsp.dtmf import DtmfDetector, DtmfEvent
from dsp.echo import EchoCanceller
from dsp.faxdetect import FaxDetector
from dsp.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from dsp.level import LevelMeter, power_dbm0
from dsp.plc import Plc
from dsp.synth import to_int16
from dsp.tone_table import Tone
from dsp.tones import ToneGenerator
from firmware.media.conference import ConferenceLegs
from firmware.media.dtmf_relay import InbandSuppressor
from firmware.media.session import FRAME, Datagram, MediaSession

Int16Array = npt.NDArray[np.int16]
RATE = 8000


class FaxTone(StrEnum):
    CNG = "cng"
    """The calling fax's 1100 Hz, heard from the phone (T.30)."""
    CED = "ced"
    """The answering fax's or modem's 2100 Hz, heard from the far end (T.30 CED, V.25 ANS)."""


@dataclass(frozen=True)
class FaxEvent:
    port: int
    tone: FaxTone


@dataclass
class TickResult:
    """What one tick produced: earpiece frames for `board.write`, datagrams per port, and events for
    call control (every port's DTMF, for digit collection too; fax tones seen)."""

    frames: Int16Array
    datagrams: list[tuple[int, Datagram]]
    dtmf: list[DtmfEvent]
    fax: list[FaxEvent]


Tap = Callable[[Int16Array, TickResult], None]
"""An observer of every tick: (mouthpiece audio after echo cancellation [ports, 160], the tick's result
with the earpiece frames). Called on the loop, after the tick; it must be quick and copy what it keeps."""


class Pipeline:
    """Media processing for `ports` ports; `attach` a `MediaSession` when a port's call has media."""

    def __init__(self, ports: int, tail_ms: float = 64.0) -> None:
        self.ports = ports
        self.echo = EchoCanceller(ports, tail_ms=tail_ms)
        self.dtmf = DtmfDetector(ports)
        self.faxdetect = FaxDetector(2 * ports)
        """Uplink ports, then downlink ports: a fax may call or answer on either side."""
        self.suppressor = InbandSuppressor(ports)
        self.plc = Plc(ports)
        self.tones = ToneGenerator(ports)
        self.levels = LevelMeter(2 * ports)
        """Uplink (after echo cancellation) then downlink (what the earpiece gets) levels."""
        self.sessions: list[MediaSession | None] = [None] * ports
        self.conference = ConferenceLegs(ports)
        self._clips: dict[int, Int16Array] = {}
        """One-shot audio still to play per port (what is left of it)."""
        self._muted = np.zeros(ports, dtype=np.int64)
        """Samples for which each port's far-end audio is still muted (under a clip)."""
        self._origin = np.zeros(ports, dtype=np.int64)
        """Detector sample at which each port's session started (its DTMF timeline's zero)."""
        self._samples = 0
        self._far = np.zeros((ports, FRAME), dtype=np.int16)
        self._both = np.zeros((2 * ports, FRAME))
        """Uplink then earpiece audio of the tick as float, shared by the level meters and the fax
        detector (one conversion, one power computation)."""
        self._relay = np.zeros(ports, dtype=bool)
        """Ports whose session relays DTMF as RFC 4733 events (their uplink goes through the suppressor)."""
        self._relaying = self._relay_all = False
        """Any, every port in `_relay` (kept as bools: the tick asks every 20 ms)."""
        self._groups: list[tuple[npt.NDArray[np.int64] | slice, bool, list[tuple[int, MediaSession]]]] = []
        """(ports, is A-law, their (port, session) pairs) per codec among ports in a call; `ports` is
        a slice of all rows when every port is in the group (a view instead of a gathered copy)."""
        self._taps: list[Tap] = []
        self._gains_db = np.zeros((2, ports))
        """The configured (rx, tx) gain per port in dB (`set_gains`)."""
        self._rx_gain = np.ones(ports)
        """Linear gain per port on the far end's voice toward the earpiece (1 on a fax call)."""
        self._tx_gain = np.ones(ports)
        """Linear gain per port on the mouthpiece toward the network (1 on a fax call)."""
        self._rx_on = self._tx_on = False
        """Any port's gain not 0 dB: at 0 dB everywhere the tick skips the multiply (bit-identical)."""

    # -- observers (the web page's scope, listen-only handset, DTMF test) ------------------------
    def add_tap(self, tap: Tap) -> None:
        self._taps.append(tap)

    def remove_tap(self, tap: Tap) -> None:
        if tap in self._taps:
            self._taps.remove(tap)

    # -- call control ---------------------------------------------------------------------------
    def attach(self, port: int, session: MediaSession, *, second: bool = False) -> None:
        """Start `port`'s call media: a new line balance, so the echo canceller forgets the old path.
        `second`: a conference leg beside the port's session."""
        if second:
            self.conference.set(port, session)
            return
        self.sessions[port] = session
        self._origin[port] = self._samples
        self.echo.reset(port)
        self.echo.force_bypass(port, False)
        self._regroup()

    def detach(self, port: int, session: MediaSession | None = None) -> MediaSession | None:
        """End `port`'s call media (`session`, default the first); returns the session (for its
        `close` and `stats`). When a conference's first leg goes, its second leg takes its place."""
        second = self.conference.sessions[port]
        if session is not None and session is second:
            self.conference.set(port, None)
            return session
        session, self.sessions[port] = self.sessions[port], None
        if second is not None:
            self.conference.set(port, None)
            self.sessions[port] = second
        self.echo.force_bypass(port, False)
        self._regroup()
        return session

    def session_of(self, channel: int) -> MediaSession | None:
        """The session whose datagrams come out on `channel`: a port's first, or `ports + port` for
        its conference leg."""
        if channel < self.ports:
            return self.sessions[channel]
        return self.conference.sessions[channel - self.ports]

    def set_gains(self, port: int, rx_db: float, tx_db: float) -> None:
        """`port`'s receive gain (far-end voice to the earpiece) and transmit gain (mouthpiece to the
        network, after echo cancellation), in dB; takes effect on the next tick. Call-progress tones
        and clips (CAS, caller ID) are not scaled: their levels are the country's and the standard's.
        The echo canceller's far-end reference is the earpiece frame after this gain, so it models
        the echo of what the line really carried. A fax/modem call is G.711 pass-through: no gain."""
        self._gains_db[:, port] = rx_db, tx_db
        self._update_gains()

    def _update_gains(self) -> None:
        """The linear gains the tick applies: the configured ones, 0 dB on ports in fax pass-through
        (a gained modem signal could clip, and the fax machines set their own levels, T.30)."""
        fax = np.array([s is not None and s.fax for s in self.sessions])
        self._rx_gain, self._tx_gain = np.where(fax, 1.0, 10.0 ** (self._gains_db / 20.0))
        self._rx_on, self._tx_on = bool((self._rx_gain != 1.0).any()), bool((self._tx_gain != 1.0).any())

    def play_audio(self, port: int, audio: Int16Array, mute_s: float = 0.0) -> None:
        """Play `audio` once into `port`'s earpiece from the next tick on (CAS and type II caller ID
        during a call), the far end muted meanwhile and `mute_s` after: the switch mutes the far end
        while it sends the CAS and the off-hook data, and while it waits for the phone's ack
        (SR-TSV-002476), or the voice would swamp the data."""
        self._clips[port] = np.asarray(audio, dtype=np.int16)
        self._muted[port] = max(int(self._muted[port]), len(audio) + round(mute_s * RATE))

    def play_tone(self, port: int, tone: Tone) -> None:
        """Play a call-progress tone to `port` (mixed over call audio when in a call, e.g. call waiting)."""
        self.tones.play(port, tone)

    def stop_tone(self, port: int) -> None:
        self.tones.stop(port)

    def _regroup(self) -> None:
        active = [(p, s) for p, s in enumerate(self.sessions) if s is not None]
        self._relay = np.array([s is not None and s.relay and not s.fax for s in self.sessions])
        self._relaying, self._relay_all = bool(self._relay.any()), bool(self._relay.all())
        groups: list[tuple[npt.NDArray[np.int64] | slice, bool, list[tuple[int, MediaSession]]]] = []
        for alaw in (False, True):
            members = [(p, s) for p, s in active if (s.codec == "PCMA") == alaw]
            if len(members) == self.ports:
                groups.append((slice(None), alaw, members))
            elif members:
                groups.append((np.array([p for p, _ in members], dtype=np.int64), alaw, members))
        self._groups = groups
        self._update_gains()

    def _enter_fax(self, port: int, session: MediaSession) -> None:
        """G.711 pass-through for a fax/modem call: echo canceller off, fixed jitter buffer."""
        session.enter_fax()
        self.echo.force_bypass(port, True)
        self._regroup()

    @property
    def uplink_dbm0(self) -> npt.NDArray[np.float64]:
        return self.levels.dbm0[:self.ports]

    @property
    def downlink_dbm0(self) -> npt.NDArray[np.float64]:
        return self.levels.dbm0[self.ports:]

    # -- the tick -------------------------------------------------------------------------------
    def tick(self, frames: npt.ArrayLike, now: float) -> TickResult:
        """Process one 20 ms frame of mouthpiece audio [ports, 160]; `now` stamps the session timers."""
        near = self.echo.process(self._far, frames)
        dtmf = self.dtmf.process(near)
        if dtmf:
            self._relay_digits(dtmf, near)
        up = near
        if self._relaying:
            suppress = np.array([s is not None and s.suppress for s in self.sessions])
            delayed = self.suppressor.process(near, suppress)
            up = delayed if self._relay_all else np.where(self._relay[:, None], delayed, near)
        if self._tx_on:
            up = to_int16(up * self._tx_gain[:, None])
        lost = np.zeros(self.ports, dtype=bool)
        datagrams: list[tuple[int, Datagram]] = []
        conference = self.conference.active
        if conference:
            up, datagrams = self.conference.uplink(up, now)
        received: Int16Array | None = None  # allocated only if some port has no frame this tick
        relayed: list[tuple[int, MediaSession]] = []
        for ports, alaw, members in self._groups:
            blob = (alaw_encode if alaw else ulaw_encode)(up[ports]).tobytes()
            arrived: list[bytes] = []
            got: list[int] = []
            # Every uplink, then every downlink: each session still sees next_uplink first (its
            # per-tick protocol), and one method's code stays warm across the ports.
            for i, (port, session) in enumerate(members):
                for dg in session.next_uplink(blob[i * FRAME:(i + 1) * FRAME], now):
                    datagrams.append((port, dg))
            for port, session in members:
                payload, lost[port] = session.next_downlink(now)
                if payload is not None:
                    arrived.append(payload)
                    got.append(port)
                if session.tones_active:
                    relayed.append((port, session))
            if got:
                codes = np.frombuffer(b"".join(arrived), dtype=np.uint8)
                decoded = (alaw_decode if alaw else ulaw_decode)(codes).reshape(len(got), FRAME)
                if len(got) == self.ports:  # every port, in order: the array is the frame
                    received = decoded
                else:
                    if received is None:
                        received = np.zeros((self.ports, FRAME), dtype=np.int16)
                    received[got] = decoded
        if received is None:
            received = np.zeros((self.ports, FRAME), dtype=np.int16)
        if len(self._groups) > 1:
            datagrams.sort(key=lambda item: item[0])  # port order, whatever the codecs
        concealed = self.plc.process(received, lost)
        muted = np.count_nonzero(self._muted)
        # A playing tone generator takes the float path even in a silent cadence phase: adding its
        # zeros there gives the same samples as the int16 path would.
        if relayed or not self.tones.idle or conference or muted or self._clips:
            out = concealed.astype(np.float64)
            for port, session in relayed:
                out[port] = session.tone_frame()
            if conference:
                out = self.conference.downlink(out, now)
            if muted:
                out[self._muted > 0] = 0.0
                self._muted = np.maximum(self._muted - FRAME, 0)
            if self._rx_on:
                out *= self._rx_gain[:, None]
            if not self.tones.idle:
                out += self.tones.next_frame(FRAME)
            if self._clips:
                self._play_clips(out)
            self._far = to_int16(out)
        elif self._rx_on:
            self._far = to_int16(concealed * self._rx_gain[:, None])
        else:
            self._far = concealed
        both = self._both
        both[:self.ports], both[self.ports:] = near, self._far
        power = np.vecdot(both, both)  # exact: integer samples, sums far below 2**53
        self.levels.feed(power / FRAME)
        fax = self._fax(both, power)
        self._samples += FRAME
        result = TickResult(self._far, datagrams, dtmf, fax)
        for tap in self._taps:
            tap(near, result)
        return result

    def _play_clips(self, out: npt.NDArray[np.float64]) -> None:
        for port, clip in list(self._clips.items()):
            n = min(FRAME, len(clip))
            out[port, :n] += clip[:n]
            if len(clip) > FRAME:
                self._clips[port] = clip[FRAME:]
            else:
                del self._clips[port]

    def _relay_digits(self, events: list[DtmfEvent], near: Int16Array) -> None:
        """Hand each port's digit events to its session, on the session's timeline."""
        by_port: dict[int, list[DtmfEvent]] = {}
        for ev in events:
            if self.sessions[ev.port] is not None:
                shift = self._origin[ev.port] / RATE
                by_port.setdefault(ev.port, []).append(replace(ev, time_s=ev.time_s - shift))
        for port, evs in by_port.items():
            session = self.sessions[port]
            assert session is not None
            session.handle_dtmf(evs, float(power_dbm0(near[port])))

    def _fax(self, both: npt.NDArray[np.float64], power: npt.NDArray[np.float64]) -> list[FaxEvent]:
        """Detect CNG/CED either way; a port in a call switches to pass-through on the first one."""
        cng, ced = self.faxdetect.process(both, power)
        if not (np.count_nonzero(cng) or np.count_nonzero(ced)):
            return []
        events = []
        for tone, hits in ((FaxTone.CNG, cng), (FaxTone.CED, ced)):
            for port in sorted({int(i) % self.ports for i in np.flatnonzero(hits)}):
                events.append(FaxEvent(port, tone))
                session = self.sessions[port]
                if session is not None and not session.fax:
                    self._enter_fax(port, session)
        return events
