"""Line diagnostics for the web page: ring a port, play a tone, a DTMF test, a live scope, call graphs.

`DiagnosticsService(gateway)` owns one `Pipeline` tap (removed by `close()`), through which it sees
every 20 ms tick: the scope keeps the last second of every port's audio both ways, the DTMF test
collects what the pipeline's own detector reported, and the call-statistics recorder samples each
running call's media session once per second of media clock.

    GET    /api/v1/diagnostics                 tones, ring cadences, caller-ID standards to offer
    POST   /api/v1/ports/{n}/ring              {"cadence", "number", "name", "standard", "seconds"}
    DELETE /api/v1/ports/{n}/ring
    POST   /api/v1/ports/{n}/tone              {"tone": "busy" | {"freq", "level_dbm0"}, "seconds"}
    POST   /api/v1/ports/{n}/dtmf-test         {"digits": "123"} (sim) or {"listen_s": 5} (any backend)
    GET    /api/v1/ports/{n}/scope?ms=100      waveform and spectrum of both directions
    GET    /api/v1/ports/{n}/callstats         jitter, loss and MOS of the call, one point per second

Tests borrow the line only while call control leaves it alone: ringing and tones need an idle line
(tones also the dial-tone state, whose tone comes back afterwards), and a call arriving meanwhile
wins: the test's end never stops a real call's ringing or tone.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from aiohttp import web

from dsp.callerid import generate_callerid, generate_dtmf_callerid
from dsp.dtmf import DIGITS
from dsp.level import DBM0_PEAK, SILENCE_DBM0
from dsp.tone_table import BELLCORE_RINGS, Component, Tone
from dsp.tones import country, ring_cadence, tone
from firmware.app import ALERT_MODES, Gateway
from firmware.line.port import State
from firmware.media.pipeline import TickResult
from firmware.media.rtcp import CallStats, mos
from firmware.media.session import MediaSession
from hal.board import FRAME, FRAME_S, RATE, Int16Array
from hal.sim import SimBoard
from web.jsonapi import check_fields, fail, number, port_index, read_json

SCOPE_SAMPLES = RATE
"""One second of history per port and direction (a multiple of FRAME)."""
STATS_EVERY_TICKS = 50
"""Call statistics are sampled once per second of media clock."""
STATS_POINTS = 600
"""Ten minutes of per-second points per port."""
STANDARDS = ("bell202", "v23", "dtmf")
TEST_NUMBER, TEST_NAME = "5551234", "HOOKFLASH TEST"
DTMF_TAIL_S = 0.3
"""The detector reports a digit's end ~40 ms after it; the test waits this long after the last key."""
MAX_DTMF_DIGITS = 20


class LineScope:
    """The last second of every port's line audio, uplink and downlink, in a circular buffer."""

    def __init__(self, ports: int) -> None:
        self._buf = np.zeros((2, ports, SCOPE_SAMPLES), dtype=np.int16)
        self._pos = 0

    def push(self, near: Int16Array, far: Int16Array) -> None:
        self._buf[0, :, self._pos:self._pos + FRAME] = near
        self._buf[1, :, self._pos:self._pos + FRAME] = far
        self._pos = (self._pos + FRAME) % SCOPE_SAMPLES

    def latest(self, port: int, samples: int) -> Int16Array:
        """[2, samples] of `port`: uplink (mouthpiece after echo cancellation), downlink (earpiece)."""
        return np.roll(self._buf[:, port], -self._pos, axis=1)[:, SCOPE_SAMPLES - samples:]


def spectrum_dbm0(x: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Hann-windowed magnitude spectrum in dBm0 per line: a sine at L dBm0 reads L at its bin
    (amplitude = 2|X| / sum(window), against the 0 dBm0 sine's peak of dsp.level)."""
    a = np.asarray(x, dtype=np.float64)
    window = np.hanning(a.shape[-1])
    amplitude = 2.0 * np.abs(np.fft.rfft(a * window, axis=-1)) / window.sum()
    floor = DBM0_PEAK * 10.0 ** (SILENCE_DBM0 / 20.0)
    return np.asarray(20.0 * np.log10(np.maximum(amplitude, floor) / DBM0_PEAK))


@dataclass(frozen=True)
class StatsPoint:
    t: float
    """Seconds since the call's media started."""
    jitter_ms: float
    loss_pct: float
    """Packets lost in the last interval, of those expected."""
    mos: float
    """G.107 E-model MOS for this interval's loss and the current delay (firmware.media.rtcp.mos)."""
    buffer_ms: float
    rtt_ms: float | None


@dataclass
class _CallTrack:
    session: MediaSession | None = None
    start: float = 0.0
    received: int = 0
    lost: int = 0
    points: deque[StatsPoint] = field(default_factory=lambda: deque(maxlen=STATS_POINTS))
    summary: CallStats | None = None


class CallStatsRecorder:
    """Per-second series of every port's call media; a port's series restarts with its next call and
    is kept after the call ends until then (so a graph of a finished call can still be read)."""

    def __init__(self, ports: int) -> None:
        self.tracks = [_CallTrack() for _ in range(ports)]

    def sample(self, sessions: list[MediaSession | None], now: float) -> None:
        for port, session in enumerate(sessions):
            track = self.tracks[port]
            if session is None:
                track.session = None
                continue
            if track.session is not session:
                track = self.tracks[port] = _CallTrack(session, now)
            stats = session.stats()
            received, lost = stats.packets_received - track.received, stats.packets_lost - track.lost
            track.received, track.lost = stats.packets_received, stats.packets_lost
            loss = 100.0 * max(lost, 0) / (received + lost) if received + lost > 0 else 0.0
            buffer_ms = session.jitter.delay_ms
            one_way = (stats.rtt_ms or 0.0) / 2 + buffer_ms + session.negotiated.ptime
            track.points.append(StatsPoint(round(now - track.start, 3), round(session.jitter_ms, 2),
                                           round(loss, 2), round(mos(one_way, loss), 2), round(buffer_ms, 1),
                                           None if stats.rtt_ms is None else round(stats.rtt_ms, 1)))
            track.summary = stats


def _tone_spec(spec: Any, country_code: str) -> Tone:
    """A tone by the country's name for it, or a test sine {"freq", "level_dbm0"}; 400 otherwise."""
    if isinstance(spec, str):
        try:
            return tone(country_code, spec)
        except KeyError as exc:
            fail(400, str(exc.args[0]))
    if isinstance(spec, dict):
        check_fields(spec, {"freq", "level_dbm0"})
        freq = number(spec, "freq", -1, 20, 3900)  # inside the 8 kHz channel, below the anti-alias edge
        level = number(spec, "level_dbm0", -13, -60, 0)
        return Tone("test", (Component(freq, level),))
    fail(400, 'tone must be a tone name (e.g. "busy") or {"freq": Hz, "level_dbm0": dB}')


class DiagnosticsService:
    """The diagnostics routes; `await close()` on app cleanup removes the pipeline tap and timers."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        ports = gateway.board.ports
        self.scope = LineScope(ports)
        self.callstats = CallStatsRecorder(ports)
        self._ticks = 0
        self._dtmf: dict[int, list[tuple[str, bool, float]]] = {}
        """Ports under a DTMF test -> detector events (digit, start, time_s) seen so far."""
        self._timers: dict[tuple[str, int], asyncio.TimerHandle] = {}
        gateway.pipeline.add_tap(self._tap)
        self.routes = web.RouteTableDef()
        r = self.routes
        r.get("/api/v1/diagnostics")(self._options)
        r.post("/api/v1/ports/{n}/ring")(self._ring)
        r.delete("/api/v1/ports/{n}/ring")(self._stop_ring)
        r.post("/api/v1/ports/{n}/tone")(self._tone)
        r.post("/api/v1/ports/{n}/dtmf-test")(self._dtmf_test)
        r.get("/api/v1/ports/{n}/scope")(self._scope)
        r.get("/api/v1/ports/{n}/callstats")(self._callstats)

    async def close(self) -> None:
        self.gateway.pipeline.remove_tap(self._tap)
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    # -- the tap (on the loop, every tick) --------------------------------------------------------
    def _tap(self, near: Int16Array, result: TickResult) -> None:
        self.scope.push(near, result.frames)
        for ev in result.dtmf:
            if ev.port in self._dtmf:
                self._dtmf[ev.port].append((ev.digit, ev.start, ev.time_s))
        self._ticks += 1
        if self._ticks % STATS_EVERY_TICKS == 0:
            self.callstats.sample(self.gateway.pipeline.sessions, asyncio.get_running_loop().time())

    # -- helpers ----------------------------------------------------------------------------------
    def _state(self, port: int) -> State | None:
        line = self.gateway.lines.get(port)
        return None if line is None else line.state

    def _standard(self, port: int) -> str:
        """The port's caller-ID standard (a board port without a [[ports]] entry: the regional one)."""
        cfg = self.gateway.config
        if port < len(cfg.ports):
            return cfg.port_callerid(port)
        chosen = cfg.regional.callerid
        return country(cfg.regional.country).callerid_standard if chosen == "auto" else chosen

    def _cadence(self, port: int) -> str:
        cfg = self.gateway.config
        return cfg.port_ring_cadence(port) if port < len(cfg.ports) else cfg.regional.ring_cadence

    def _later(self, kind: str, port: int, seconds: float, action: Any) -> None:
        old = self._timers.pop((kind, port), None)
        if old is not None:
            old.cancel()

        def fire() -> None:
            self._timers.pop((kind, port), None)
            action()
        self._timers[(kind, port)] = asyncio.get_running_loop().call_later(seconds, fire)

    # -- routes -----------------------------------------------------------------------------------
    async def _options(self, request: web.Request) -> web.Response:
        c = country(self.gateway.country)
        cadences = ["normal", *sorted(c.distinctive_rings), *sorted(BELLCORE_RINGS)]
        return web.json_response({"country": c.code, "ports": self.gateway.board.ports,
                                  "tones": sorted(c.tones), "cadences": list(dict.fromkeys(cadences)),
                                  "callerid_standards": list(STANDARDS),
                                  "simulator": isinstance(self.gateway.board, SimBoard)})

    async def _ring(self, request: web.Request) -> web.Response:
        """Ring with a test caller ID (the sim phone's display decodes it; a real one shows it)."""
        port = port_index(request, self.gateway)
        body = await read_json(request, required=False)
        check_fields(body, {"cadence", "number", "name", "standard", "seconds"})
        seconds = number(body, "seconds", 12, 1, 120)
        standard = body.get("standard", self._standard(port))
        if standard not in STANDARDS:
            fail(400, f"standard must be one of {', '.join(STANDARDS)}")
        cadence_name = body.get("cadence", self._cadence(port))
        num, name = body.get("number", TEST_NUMBER), body.get("name", TEST_NAME)
        if not isinstance(cadence_name, str) or not isinstance(num, str) or not isinstance(name, str):
            fail(400, "cadence, number and name must be strings")
        if num and not num.isdigit():
            fail(400, "number must be digits only (caller ID carries digits)")
        try:
            cadence = ring_cadence(cadence_name, self.gateway.country)
        except KeyError as exc:
            fail(400, str(exc.args[0]))
        try:
            if standard == "dtmf":
                audio = generate_dtmf_callerid(num or None)
            else:
                audio = generate_callerid(num or None, name or None, datetime.now(), standard)
        except ValueError as exc:
            fail(400, f"caller ID: {exc}")
        if (state := self._state(port)) not in (None, State.IDLE):
            fail(409, f"port {port + 1} is in use ({state}); ring it when idle")
        line = self.gateway.board.lines[port]
        now = self.gateway.board.now()
        if not line.ring(cadence, now, callerid=audio, mode=ALERT_MODES[standard]):
            fail(409, f"port {port + 1} is off hook: a line is never rung off hook")
        self._later("ring", port, seconds, lambda: self._end_ring(port))
        return web.json_response({"port": port + 1, "cadence": cadence.name, "standard": standard,
                                  "number": num or None, "name": name or None, "seconds": seconds})

    def _end_ring(self, port: int) -> None:
        if self._state(port) in (None, State.IDLE):  # an incoming call rings it now: leave it be
            self.gateway.board.lines[port].stop_ring(self.gateway.board.now())

    async def _stop_ring(self, request: web.Request) -> web.Response:
        port = port_index(request, self.gateway)
        if (state := self._state(port)) not in (None, State.IDLE):
            fail(409, f"port {port + 1} rings for a call ({state}), not for a test")
        timer = self._timers.pop(("ring", port), None)
        if timer is not None:
            timer.cancel()
        self._end_ring(port)
        return web.json_response({"port": port + 1, "ringing": False})

    async def _tone(self, request: web.Request) -> web.Response:
        port = port_index(request, self.gateway)
        body = await read_json(request)
        check_fields(body, {"tone", "seconds"})
        if "tone" not in body:
            fail(400, 'tone is required: a tone name (e.g. "busy") or {"freq": Hz, "level_dbm0": dB}')
        played = _tone_spec(body["tone"], self.gateway.country)
        seconds = number(body, "seconds", 3, 0.2, 30)
        if (state := self._state(port)) not in (None, State.IDLE, State.DIALTONE):
            fail(409, f"port {port + 1} is in use ({state}); play test tones on an idle line or at dial tone")
        line = self.gateway.lines.get(port)
        borrowed = None if line is None else line.tone
        self.gateway.pipeline.play_tone(port, played)
        self._later("tone", port, seconds, lambda: self._end_tone(port, borrowed))
        return web.json_response({"port": port + 1, "tone": played.name, "seconds": seconds,
                                  "components": [asdict(c) for c in played.components]})

    def _end_tone(self, port: int, borrowed: str | None) -> None:
        """Give the line back: call control's own tone again, unless it has moved on meanwhile."""
        line = self.gateway.lines.get(port)
        if line is not None and line.tone != borrowed:
            return  # call control played or stopped a tone since: that replaced the test tone
        if borrowed is None:
            self.gateway.pipeline.stop_tone(port)
            return
        try:
            own = tone(self.gateway.country, borrowed)
        except KeyError:  # as the gateway does for a tone the country lacks
            own = tone(self.gateway.country, "congestion")
        self.gateway.pipeline.play_tone(port, own)

    async def _dtmf_test(self, request: web.Request) -> web.Response:
        """Dial `digits` from the sim phone (or, on any backend, listen `listen_s` while a person
        presses keys) and report what the pipeline's DTMF detector heard. The keys are real keys:
        at dial tone they also reach the dial plan, as on any phone."""
        port = port_index(request, self.gateway)
        body = await read_json(request)
        check_fields(body, {"digits", "listen_s"})
        board = self.gateway.board
        digits = body.get("digits")
        if digits is not None:
            if not isinstance(digits, str) or not 1 <= len(digits) <= MAX_DTMF_DIGITS \
                    or any(d not in DIGITS for d in digits.upper()):
                fail(400, f"digits must be 1..{MAX_DTMF_DIGITS} of 0-9 * # A-D")
            if not isinstance(board, SimBoard):
                fail(409, "dialling digits needs the sim backend; on hardware send listen_s and press keys")
            phone = board.phones[port]
            if not phone.hook_after_pending[0]:
                fail(409, f"phone {port + 1} is on hook: lift it first (its keypad is dead on hook)")
        elif "listen_s" not in body:
            fail(400, "send digits (the sim phone dials them) or listen_s (seconds to listen)")
        if port in self._dtmf:
            fail(409, f"a DTMF test is already running on port {port + 1}")
        if digits is not None:
            now = board.now()
            wait = phone.dial_dtmf(digits.upper(), now) - now + DTMF_TAIL_S
        else:
            wait = number(body, "listen_s", 5, 1, 30)
        self._dtmf[port] = []
        try:
            await asyncio.sleep(wait)
            await asyncio.sleep(2 * FRAME_S)  # the tick in progress
        finally:
            events = self._dtmf.pop(port)
        t0 = events[0][2] if events else 0.0
        heard = "".join(d for d, start, _ in events if start)
        report: dict[str, Any] = {"heard": heard, "events": [
            {"digit": d, "edge": "start" if s else "end", "t": round(t - t0, 3)} for d, s, t in events]}
        if digits is not None:
            report |= {"sent": digits.upper(), "match": heard == digits.upper()}
        return web.json_response(report)

    async def _scope(self, request: web.Request) -> web.Response:
        port = port_index(request, self.gateway)
        try:
            ms = float(request.query.get("ms", "100"))
        except ValueError:
            ms = -1.0
        if not 20 <= ms <= 1000:
            fail(400, "ms must be a number from 20 to 1000")
        samples = round(ms * RATE / 1000)
        both = self.scope.latest(port, samples)
        spectrum = np.round(spectrum_dbm0(both), 1)
        pipeline = self.gateway.pipeline
        return web.json_response({
            "port": port + 1, "rate": RATE, "samples": samples,
            "uplink": both[0].tolist(), "downlink": both[1].tolist(),
            "spectrum": {"hz": np.round(np.fft.rfftfreq(samples, 1 / RATE), 1).tolist(),
                         "uplink_dbm0": spectrum[0].tolist(), "downlink_dbm0": spectrum[1].tolist()},
            "level_dbm0": {"uplink": round(float(pipeline.uplink_dbm0[port]), 1),
                           "downlink": round(float(pipeline.downlink_dbm0[port]), 1)}})

    async def _callstats(self, request: web.Request) -> web.Response:
        port = port_index(request, self.gateway)
        track = self.callstats.tracks[port]
        return web.json_response({
            "port": port + 1, "active": track.session is not None,
            "series": [asdict(p) for p in track.points],
            "summary": None if track.summary is None else asdict(track.summary)})
