"""The `sim` backend: virtual phones on simulated lines, good enough that a test through it means something.

Each port has a `VirtualPhone`: a hook switch (with optional contact bounce), a DTMF keypad that puts
real tones into the line, a rotary dial that makes real pulse trains on the hook switch, a mouthpiece
fed from audio buffers or WAV files, an earpiece recorder (the last 60 s), a ringer with timestamps, a
caller-ID display that decodes what the line actually sent while on-hook (and after a CAS, off-hook),
and a message-waiting lamp. A 2-to-4-wire hybrid leaks what the gateway plays back into what it reads
(`HybridEcho`), so an echo canceller has real work.

Time is the board's: `SimBoard(realtime=False)` (tests) advances 20 ms per `read()` without waiting;
`realtime=True` (`make run`) paces `read()` by the wall clock, the same media clock an ALSA period gives.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.signal import firwin, lfilter

from dsp.callerid import CAS_ACK_DIGITS, CallerId, decode_callerid, decode_dtmf_callerid, detect_alert
from dsp.dtmf import generate_dtmf
from dsp.level import power_dbm0
from dsp.wav import read_wav
from hal.board import FRAME, FRAME_S, RATE, Board, Int16Array
from hal.events import Feed, HookEvent
from hal.hook import HookTiming
from hal.line import Line

EARPIECE_SECONDS = 60
ONHOOK_SILENCE_DBM0 = -50.0
"""On-hook audio quieter than this is line silence to the caller-ID receiver."""
ONHOOK_DECODE_GAP_S = 0.2
"""The receiver decodes a burst once the line has been silent this long after it."""
STREAM_PREBUFFER = 3 * FRAME
"""A live mouthpiece stream (e.g. a browser microphone over WebRTC) starts playing once 60 ms are
queued, so network jitter of a few frames does not starve the line frame by frame."""
STREAM_MAX = 10 * FRAME
"""Queued stream audio beyond 200 ms is dropped (oldest first): a producer running faster than the
line's clock must not build up delay without bound."""

EarpieceTap = Callable[[Int16Array], None]


@dataclass(frozen=True)
class HybridEcho:
    """A 2-to-4-wire hybrid echo path: a pure delay, then a band-limited dispersive response.

    Shaped like the ITU-T G.168 Annex D model paths (a few ms of dispersion within a 64 ms window,
    300..3400 Hz) but generated here, not the G.168 tables; `erl_db` sets the echo return loss (the
    loss from earpiece signal to echo, averaged over 300..3400 Hz); G.168 tests use 6 dB and up.
    """

    erl_db: float = 12.0
    delay_ms: float = 4.0
    dispersion_ms: float = 6.0
    seed: int = 168

    def impulse_response(self) -> npt.NDArray[np.float64]:
        rng = np.random.default_rng(self.seed)
        n = max(8, round(self.dispersion_ms * RATE / 1000))
        tail = rng.standard_normal(n) * np.exp(-np.arange(n) / (n / 4))
        band = firwin(31, [300, 3400], fs=RATE, pass_zero=False)
        h = np.concatenate([np.zeros(round(self.delay_ms * RATE / 1000)), np.convolve(tail, band)])
        response = np.abs(np.fft.rfft(h, 1024)) ** 2
        freqs = np.fft.rfftfreq(1024, 1 / RATE)
        in_band = np.mean(response[(freqs >= 300) & (freqs <= 3400)])  # ERL is quoted over the band
        return np.asarray(h * 10 ** (-self.erl_db / 20) / np.sqrt(in_band))


DEFAULT_ECHO = HybridEcho()


@dataclass
class _Scheduled:
    at: float
    audio: Int16Array


@dataclass
class VirtualPhone:
    """One analog phone on a simulated port (see the module docstring)."""

    port: int
    bounce: bool = False
    offhook: bool = False
    """Where the user has put the hook switch (the line confirms it after debouncing)."""
    ring_bursts: list[tuple[float, float | None]] = field(default_factory=list)
    """(start, end) of every ring burst heard; end None while ringing."""
    callerid: CallerId | None = None
    callerid_log: list[CallerId] = field(default_factory=list)
    mwi_lamp: bool = False
    polarity_reversed: bool = False
    feed: Feed = Feed.ACTIVE
    _edges: deque[tuple[float, bool]] = field(default_factory=deque)
    _mouth: deque[_Scheduled] = field(default_factory=deque)
    _earpiece: deque[Int16Array] = field(default_factory=lambda: deque(
        maxlen=EARPIECE_SECONDS * RATE // FRAME))
    _taps: list[EarpieceTap] = field(default_factory=list)
    _stream: deque[Int16Array] = field(default_factory=deque)
    _streamed: int = 0
    _stream_started: bool = False
    _stream_lock: threading.Lock = field(default_factory=threading.Lock)
    _keypad: deque[tuple[float, float]] = field(default_factory=deque)
    """(start, end) of keypad sending, during which the live stream is muted."""
    _onhook_rx: list[Int16Array] = field(default_factory=list)
    _quiet_s: float = 0.0
    _rings_seen: int = 0
    _cas_at: float | None = None

    # -- what a person does ---------------------------------------------------------------------
    def lift(self, at: float) -> None:
        self._hook(at, True)
        self._rings_seen = len(self.ring_bursts)

    def hang_up(self, at: float) -> None:
        self._hook(at, False)

    def flash(self, at: float, ms: float = 300.0) -> None:
        """Press the flash button (or tap the cradle): a timed break of `ms`."""
        self._hook(at, False)
        self._hook(at + ms / 1000, True)

    def dial_pulse(self, digits: str, at: float, pps: float = 10.0, break_ratio: float = 0.6,
                   pause_s: float = 0.6) -> float:
        """Turn the rotary dial; returns when the last digit's pulses end (only 0-9 exist on a dial)."""
        if not digits.isdigit():
            raise ValueError(f"a rotary dial has only 0-9, not {digits!r}")
        t = at
        for d in digits:
            for _ in range(10 if d == "0" else int(d)):
                self._hook(t, False)
                self._hook(t + break_ratio / pps, True)
                t += 1 / pps
            t += pause_s
        return t

    def dial_dtmf(self, digits: str, at: float, on_ms: float = 100.0, off_ms: float = 100.0,
                  level_dbm0: float = -10.0) -> float:
        """Press keys: real DTMF tones into the mouthpiece; returns when the last tone ends.

        Like a real telephone set, the keypad mutes the transmitter while it sends, so a live voice
        stream (`stream`) cannot corrupt the digits; scheduled audio (`speak`) is not muted."""
        audio = generate_dtmf(digits, RATE, on_ms=on_ms, off_ms=off_ms, level_dbm0=level_dbm0)
        self.speak(audio, at)
        end = at + len(audio) / RATE
        with self._stream_lock:
            self._keypad.append((at, end))
        return end

    def speak(self, audio: npt.ArrayLike, at: float) -> None:
        """Play int16 audio (8 kHz) into the mouthpiece once, starting at `at`."""
        self._mouth.append(_Scheduled(at, np.asarray(audio, dtype=np.int16)))

    def speak_wav(self, path: str, at: float) -> None:
        self.speak(read_wav(path), at)

    def stream(self, audio: npt.ArrayLike) -> None:
        """Queue live int16 audio (8 kHz) for the mouthpiece, played on the line's clock as it comes.

        Unlike `speak` nothing is scheduled at a time: the producer (a microphone) runs on its own
        clock, so the queue starts playing after `STREAM_PREBUFFER`, drops the oldest audio beyond
        `STREAM_MAX`, and re-buffers after running dry (an underrun is heard as silence, as on a
        real network phone). Thread-safe against `SimBoard.read`, which runs in the media thread.
        """
        chunk = np.asarray(audio, dtype=np.int16).ravel()
        with self._stream_lock:
            if chunk.size:
                self._stream.append(chunk.copy())
                self._streamed += chunk.size
            while self._streamed > STREAM_MAX and len(self._stream) > 1:
                self._streamed -= len(self._stream.popleft())

    def add_earpiece_tap(self, tap: EarpieceTap) -> None:
        """Call `tap(frame)` with every 20 ms frame the earpiece plays (silence while on hook)."""
        self._taps.append(tap)

    def remove_earpiece_tap(self, tap: EarpieceTap) -> None:
        if tap in self._taps:
            self._taps.remove(tap)

    @property
    def hook_after_pending(self) -> tuple[bool, float | None]:
        """Where the hook switch will be once every scheduled action (a pulse train, a flash) is
        done, and when the last of them happens (None when nothing is pending)."""
        if self._edges:
            at, level = self._edges[-1]
            return level, at
        return self.offhook, None

    # -- what a person perceives ----------------------------------------------------------------
    @property
    def ringing(self) -> bool:
        return bool(self.ring_bursts) and self.ring_bursts[-1][1] is None

    @property
    def rings(self) -> int:
        """Ring bursts heard since the phone was last picked up."""
        return len(self.ring_bursts) - self._rings_seen

    def earpiece(self, seconds: float = EARPIECE_SECONDS) -> Int16Array:
        """The last `seconds` (at most 60) of what the earpiece played."""
        audio = np.concatenate(list(self._earpiece)) if self._earpiece else np.zeros(0, np.int16)
        return audio[-round(seconds * RATE):] if seconds > 0 else audio[:0]

    # -- the line's side ------------------------------------------------------------------------
    def _hook(self, at: float, offhook: bool) -> None:
        if self._edges and at < self._edges[-1][0]:
            raise ValueError("hook actions must be scheduled in time order")
        if self.bounce:  # a real cradle switch chatters for a couple of ms (1 ms steps here)
            for k in range(3):
                self._edges.append((at + k * 0.001, offhook))
                self._edges.append((at + k * 0.001 + 0.0004, not offhook))
            at += 0.003
        self._edges.append((at, offhook))

    def _due_edges(self, now: float) -> list[tuple[float, bool]]:
        due = []
        while self._edges and self._edges[0][0] <= now:
            due.append(self._edges.popleft())
            self.offhook = due[-1][1]
        return due

    def _mouthpiece(self, t: float) -> Int16Array:
        out = np.zeros(FRAME, np.int32)
        start = round(t * RATE)
        for item in list(self._mouth):
            offset = start - round(item.at * RATE)
            if offset >= len(item.audio):
                self._mouth.remove(item)
                continue
            lo, hi = max(offset, 0), min(len(item.audio), offset + FRAME)
            if hi > lo:
                out[lo - offset:hi - offset] += item.audio[lo:hi]
        out += self._next_streamed(t)
        connected = self.offhook and self.feed is Feed.ACTIVE
        return np.clip(out, -32768, 32767).astype(np.int16) if connected else np.zeros(FRAME, np.int16)

    def _next_streamed(self, t: float) -> npt.NDArray[np.int32]:
        """The live stream's frame at `t` (zeros while buffering, dry, or muted by the keypad)."""
        out = np.zeros(FRAME, np.int32)
        with self._stream_lock:
            self._take_streamed(out)
            while self._keypad and self._keypad[0][1] <= t:
                self._keypad.popleft()
            if any(start < t + FRAME_S for start, _ in self._keypad):
                out[:] = 0
        return out

    def _take_streamed(self, out: npt.NDArray[np.int32]) -> None:
        if not self._stream_started:
            if self._streamed < STREAM_PREBUFFER:
                return
            self._stream_started = True
        filled = 0
        while filled < FRAME and self._stream:
            chunk = self._stream[0]
            take = min(FRAME - filled, len(chunk))
            out[filled:filled + take] = chunk[:take]
            filled += take
            self._streamed -= take
            if take == len(chunk):
                self._stream.popleft()
            else:
                self._stream[0] = chunk[take:]
        if filled < FRAME:
            self._stream_started = False

    def _ringer(self, on: bool, at: float) -> None:
        if on and not self.ringing:
            self.ring_bursts.append((at, None))
        elif not on and self.ringing:
            self.ring_bursts[-1] = (self.ring_bursts[-1][0], at)

    def _hear(self, frame: Int16Array, t: float) -> None:
        connected = self.offhook and self.feed is Feed.ACTIVE
        heard = frame.copy() if connected else np.zeros(FRAME, np.int16)
        self._earpiece.append(heard)
        for tap in list(self._taps):
            tap(heard)
        if not connected:
            self._receive_onhook(frame)
        else:
            self._receive_offhook(frame, t)

    def _receive_onhook(self, frame: Int16Array) -> None:
        """The caller-ID unit: collect a burst of on-hook data and decode it once the line is quiet."""
        loud = power_dbm0(frame) > ONHOOK_SILENCE_DBM0
        if loud or self._onhook_rx:
            self._onhook_rx.append(frame.copy())
        self._quiet_s = 0.0 if loud else self._quiet_s + FRAME_S
        if self._onhook_rx and self._quiet_s >= ONHOOK_DECODE_GAP_S:
            self._show(np.concatenate(self._onhook_rx))
            self._onhook_rx.clear()

    def _receive_offhook(self, frame: Int16Array, t: float) -> None:
        """Type II caller ID: on a CAS, acknowledge with DTMF 'D', then decode the burst that follows."""
        self._onhook_rx.append(frame.copy())
        if len(self._onhook_rx) > 150:  # keep 3 s
            self._onhook_rx.pop(0)
        recent = np.concatenate(self._onhook_rx[-6:])
        if self._cas_at is None:
            if detect_alert(recent, RATE, min_ms=60):
                self._cas_at = t
                self.speak(generate_dtmf(CAS_ACK_DIGITS[0], RATE, on_ms=60, off_ms=0), t + 0.04)
                self._onhook_rx = []
        elif t - self._cas_at > 1.5:
            self._show(np.concatenate(self._onhook_rx))
            self._cas_at, self._onhook_rx = None, []

    def _show(self, audio: Int16Array) -> None:
        """Display what the burst holds: FSK (Bell 202 or V.23), else DTMF caller ID (ETSI ES 200 778-1
        annex B, sent before the first ring), as a phone that reads both does."""
        result = decode_callerid(audio, RATE) or decode_dtmf_callerid(audio, RATE)
        if result is None or not result.valid:
            return
        self.callerid_log.append(result)
        if result.vmwi is not None:
            self.mwi_lamp = result.vmwi
        else:
            self.callerid = result


class _SimDriver:
    """LineDriver of a simulated port: forwards to the virtual phone, stamped with the board clock."""

    max_ring_duty = 1.0

    def __init__(self, board: SimBoard, phone: VirtualPhone) -> None:
        self._board, self._phone = board, phone

    def set_ringer(self, on: bool) -> None:
        self._phone._ringer(on, self._board.now())

    def set_polarity(self, reversed_: bool) -> None:
        self._phone.polarity_reversed = reversed_

    def set_feed(self, feed: Feed) -> None:
        self._phone.feed = feed


class SimBoard(Board):
    """N virtual phones on simulated lines (the default backend)."""

    def __init__(self, ports: int = 2, realtime: bool = False, echo: HybridEcho | None = DEFAULT_ECHO,
                 timing: HookTiming | None = None, bounce: bool = False) -> None:
        super().__init__()
        if not 1 <= ports <= 64:
            raise ValueError(f"sim backend: ports must be 1..64, not {ports}")
        self.realtime = realtime
        self._t = 0.0
        self._origin = time.monotonic()
        self.phones = [VirtualPhone(p, bounce=bounce) for p in range(ports)]
        self.lines = [Line(p, _SimDriver(self, phone), timing) for p, phone in enumerate(self.phones)]
        self._echo = echo.impulse_response() if echo is not None else None
        self._echo_state = np.zeros((ports, len(self._echo) - 1 if self._echo is not None else 0))
        self._played = np.zeros((ports, FRAME))
        self._last_frame_t = 0.0

    def now(self) -> float:
        return time.monotonic() - self._origin if self.realtime else self._t

    def poll(self, now: float | None = None) -> list[HookEvent]:
        now = self.now() if now is None else now
        for phone in self.phones:
            for at, level in phone._due_edges(now):
                self.report_hook(phone.port, level, at)
        return super().poll(now)

    def read(self) -> tuple[float, Int16Array]:
        """Mouthpiece audio of every phone plus the hybrid echo of the frame last played."""
        t = self._t
        if self.realtime:
            delay = self._origin + t + FRAME_S - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        frames = np.stack([phone._mouthpiece(t) for phone in self.phones]).astype(np.float64)
        if self._echo is not None:
            echo, self._echo_state = lfilter(self._echo, [1.0], self._played, axis=1, zi=self._echo_state)
            frames += np.rint(echo)
        self._last_frame_t = t
        self._t = t + FRAME_S
        return t, np.clip(frames, -32768, 32767).astype(np.int16)

    def write(self, frames: Int16Array) -> None:
        """Earpiece audio of every port (on-hook data scheduled by the lines is added here)."""
        t = self._last_frame_t
        out = self.mix_onhook_audio(np.asarray(frames, dtype=np.int16), t)
        self._played = out.astype(np.float64)
        for phone in self.phones:
            phone._hear(out[phone.port], t)
