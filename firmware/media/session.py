"""One call's media, sans-IO: RTP out and in, RTCP, jitter buffer, RFC 4733 relay, SRTP.

The session never touches a socket or a clock (DESIGN.md, "How a sans-IO core meets asyncio"): the
adapter feeds it received datagrams with `now`, and the pipeline calls it once per 20 ms tick for what
to send and what to play. Sample work stays out: the pipeline encodes, decodes and conceals (G.711,
G.711 Appendix I PLC) for all ports at once, so the session moves G.711 payload bytes only.

Per tick, in this order: `handle_dtmf` (the detector's events for this port; `suppress` then says
whether the uplink audio must be silenced), `next_uplink(payload, now)` (datagrams to send: audio,
RFC 4733 events, RTCP when due), `next_downlink(now)` (the jitter buffer's frame) and, while
`tones_active`, `tone_frame()` (relayed digits played to the phone instead of received audio).
"""

from __future__ import annotations

import random
import time
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from dsp.dtmf import DtmfEvent
from firmware.media.dtmf_relay import DtmfMode, DtmfReceiver, DtmfSender, ToneOut
from firmware.media.jitter import JitterBuffer
from firmware.media.rtcp import CallStats, RtcpSession
from firmware.media.rtp import Address, RtpReceiver, RtpSender
from firmware.media.srtp import SrtpContext, SrtpError
from firmware.sip.sdp import Direction, Negotiated

FRAME = 160
"""Samples per tick at 8 kHz (20 ms)."""
FAX_JITTER_MS = 100.0
"""Fixed playout delay in fax/modem pass-through: a buffer that adapts (drops or inserts frames)
breaks a modem's carrier, so it is pinned at a depth that absorbs ordinary jitter (T.38-less
fax over G.711, as ITU-T V.152 voice-band data describes)."""
ECHO_GUARD_FRAMES = 5
"""Ticks after a relayed digit last sounded in the earpiece during which a digit detected in the
uplink is its hybrid echo (echo delay + the detector's ~40 ms), not a key: it is not relayed back."""


class Datagram(NamedTuple):
    """One packet to send: on the session's RTCP socket when `rtcp`, else its RTP socket."""

    data: bytes
    addr: Address
    rtcp: bool


class MediaSession:
    """The media of one call on one port (see the module docstring for the per-tick protocol).

    `local_port` is our RTP port (RTCP is the next one, RFC 3550 §11). DTMF events' `time_s` count
    from the first frame this session was given; in rfc4733 mode the pipeline delays the uplink one
    frame (`InbandSuppressor`), so captured sample s travels in the packet stamped origin + 160 + s,
    and the telephone events are stamped on that same timeline.
    """

    def __init__(self, negotiated: Negotiated, local_port: int, now: float, *,
                 dtmf_mode: DtmfMode = DtmfMode.RFC4733, cname: str = "hookflash",
                 rng: random.Random | None = None, wallclock: float | None = None) -> None:
        if negotiated.clock_rate != 8000 or negotiated.ptime % 20:
            raise ValueError(f"media: G.711 at 8000 Hz in multiples of 20 ms only, not "
                             f"{negotiated.clock_rate} Hz / {negotiated.ptime} ms")
        self.negotiated = negotiated
        self.local_port = local_port
        self.codec = negotiated.codec.upper()
        self.direction = negotiated.direction
        self._event_pt = negotiated.telephone_event_pt
        self.relay = dtmf_mode is DtmfMode.RFC4733 and negotiated.telephone_event_pt is not None
        self.fax = False
        self.srtp_failures = 0
        self._srtp = SrtpContext.from_params(negotiated.srtp) if negotiated.srtp else None
        self._sender = RtpSender(negotiated, rng)
        self._receiver = RtpReceiver(negotiated)
        self._rtcp = RtcpSession(self._sender, negotiated.clock_rate, now,
                                 time.time() if wallclock is None else wallclock, cname, rng)
        self._rtcp_due = self._rtcp.get_timer()
        self._jitter = JitterBuffer(self.codec)
        origin = self._sender.timestamp + (FRAME if self.relay else 0)
        self._dtmf_out = DtmfSender(origin)
        self._dtmf_in = DtmfReceiver()
        self._tones = ToneOut()
        self._echo_guard = 0
        self._samples = 0
        """Uplink samples taken so far (the DTMF timeline's position)."""
        self._pending = b""
        """Uplink payload waiting for a full ptime."""

    @property
    def direction(self) -> Direction:
        """The SDP direction (RFC 3264 §5.1) from our side: whether we send and whether we play."""
        return self._direction

    @direction.setter
    def direction(self, value: Direction) -> None:
        self._direction = value
        self._sends = value in ("sendrecv", "sendonly")
        self._plays = value in ("sendrecv", "recvonly")
        """Both kept as bools, asked for every packet and every tick."""

    # -- network in ---------------------------------------------------------------------------
    def receive_rtp(self, data: bytes, addr: Address, now: float) -> None:
        """A datagram arrived on our RTP socket: unprotect, filter, then audio to the jitter buffer
        or telephone events to the tone player. Bad packets are counted, never raised."""
        if self._srtp is not None:
            try:
                data = self._srtp.unprotect(data)
            except SrtpError:
                self.srtp_failures += 1
                return
        packet = self._receiver.receive(data, addr)
        if packet is None:
            return
        self._rtcp.rtp_received(packet, now)
        if not self._plays:
            return  # on hold from our side: latch and count, but play nothing
        if packet.payload_type == self._event_pt:
            for digit in self._dtmf_in.receive(packet.payload, packet.timestamp, now):
                self._tones.handle(digit)
        else:
            self._jitter.push(packet.payload, seq=packet.sequence_number, timestamp=packet.timestamp,
                              ssrc=packet.ssrc, now=now)

    def receive_rtcp(self, data: bytes, addr: Address, now: float) -> None:
        """A datagram arrived on our RTCP socket."""
        if self._srtp is not None:
            try:
                data = self._srtp.unprotect_rtcp(data)
            except SrtpError:
                self.srtp_failures += 1
                return
        self._rtcp.receive(data, now)

    # -- uplink ---------------------------------------------------------------------------------
    @property
    def suppress(self) -> bool:
        """A digit is being relayed as RFC 4733 events: its in-band audio must not be sent."""
        return self._dtmf_out.suppress

    def handle_dtmf(self, events: list[DtmfEvent], level_dbm0: float) -> None:
        """This port's detector events of the tick (time_s on the session's timeline, see the class)."""
        if not self.relay or self.fax:  # fax: a modem's tones are data, not digits to relay
            return
        for event in events:
            if event.start and self._echo_guard:
                continue  # our own relayed digit coming back through the hybrid
            self._dtmf_out.handle(event, level_dbm0)

    def next_uplink(self, payload: bytes, now: float) -> list[Datagram]:
        """This tick's G.711 payload (160 bytes) in; the datagrams to send out."""
        out: list[Datagram] = []
        if self._echo_guard:
            self._echo_guard -= 1
        remote = self._receiver.remote
        sending = self._sends
        if self.relay:
            frame_ts = (self._dtmf_out.rtp_origin + self._samples) & 0xFFFFFFFF
            for ev in self._dtmf_out.tick(frame_ts, FRAME):
                if sending:
                    out.append(self._rtp(self._sender.event(ev.payload, ev.timestamp, ev.marker), remote))
        self._samples += FRAME
        self._pending += payload
        if len(self._pending) >= self._sender.samples_per_packet:
            if sending:  # the audio packet, every tick: _rtp inline
                packet = self._sender.audio(self._pending)
                out.append(Datagram(self._srtp.protect(packet) if self._srtp else packet, remote, False))
            else:
                self._sender.skip(len(self._pending))  # keep the timeline: resuming starts a talkspurt
            self._pending = b""
        if now >= self._rtcp_due:
            report = self._rtcp.handle_timer(now)
            self._rtcp_due = self._rtcp.get_timer()
            if report is not None:
                out.append(self._rtcp_out(report))
        return out

    def _rtp(self, packet: bytes, addr: Address) -> Datagram:
        return Datagram(self._srtp.protect(packet) if self._srtp else packet, addr, False)

    def _rtcp_out(self, report: bytes) -> Datagram:
        """RTCP goes to the SDP's RTCP address, or beside the latched RTP source (symmetric RTP)."""
        host, port = self._receiver.remote
        sdp_rtp = (self.negotiated.remote_addr, self.negotiated.remote_port)
        addr = self.negotiated.remote_rtcp if (host, port) == sdp_rtp else (host, port + 1)
        return Datagram(self._srtp.protect_rtcp(report) if self._srtp else report, addr, True)

    # -- downlink -------------------------------------------------------------------------------
    def next_downlink(self, now: float) -> tuple[bytes | None, bool]:
        """The jitter buffer's frame for this tick: (payload, False); (None, True) to conceal a loss;
        (None, False) when there is nothing to play (not started, idle, on hold)."""
        if self._dtmf_in.get_timer() is not None:
            for digit in self._dtmf_in.handle_timer(now):
                self._tones.handle(digit)
        return self._jitter.pop(now)

    @property
    def tones_active(self) -> bool:
        """A relayed digit is playing: `tone_frame` replaces the received audio this tick."""
        return self._tones.active

    def tone_frame(self) -> npt.NDArray[np.int16]:
        """The next 20 ms of relayed digits for the earpiece (RFC 4733 §2.5.2)."""
        self._echo_guard = ECHO_GUARD_FRAMES
        return self._tones.frame(FRAME)

    # -- control --------------------------------------------------------------------------------
    def update(self, negotiated: Negotiated) -> None:
        """A re-INVITE changed the direction (hold, resume) or the remote address; same codec and keys."""
        if negotiated.codec.upper() != self.codec or negotiated.srtp != self.negotiated.srtp:
            raise ValueError("media: codec or SRTP keys changed; start a new session")
        self.negotiated = negotiated
        self.direction = negotiated.direction
        self._event_pt = negotiated.telephone_event_pt
        if not self._receiver.latched:
            self._receiver.remote = (negotiated.remote_addr, negotiated.remote_port)

    def skip(self, seconds: float) -> None:
        """A pause (the call was on hold, its session parked): the RTP timeline keeps running (RFC 3550
        §5.1), so the next packet, a talkspurt start, carries the right timestamp; playout restarts."""
        samples = round(seconds * 8000 / FRAME) * FRAME
        self._sender.skip(samples)
        self._samples += samples
        self._jitter.pause()

    def enter_fax(self) -> None:
        """Fax/modem pass-through (ITU-T V.152): fixed playout delay, no DTMF relay of modem tones."""
        self.fax = True
        self._jitter.fixed_s = FAX_JITTER_MS / 1000.0

    @property
    def jitter(self) -> JitterBuffer:
        return self._jitter

    @property
    def jitter_ms(self) -> float:
        """The received stream's interarrival jitter now (RFC 3550 A.8 estimate; 0 before any packet)."""
        source = self._rtcp.source
        return 0.0 if source is None else source.jitter_ms

    @property
    def remote(self) -> Address:
        """Where our RTP goes: the SDP address until the peer's packets latch it (RFC 4961)."""
        return self._receiver.remote

    def close(self, now: float) -> list[Datagram]:
        """The final RTCP report and BYE (RFC 3550 §6.6), to send as the call ends."""
        return [self._rtcp_out(self._rtcp.bye(now))]

    def stats(self) -> CallStats:
        """Totals for the call history: loss, jitter, RTT, MOS (with PLC, at the buffer's current delay)."""
        return self._rtcp.summary(self._jitter.delay_ms, self.negotiated.ptime)
