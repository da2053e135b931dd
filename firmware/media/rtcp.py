"""RTCP for one call (RFC 3550 §6), sans-IO: reception statistics, reports, RTT, and a MOS estimate.

Statistics follow the RFC's reference code: sequence tracking and loss (Appendix A.1, A.3),
interarrival jitter (A.8), round-trip time from LSR/DLSR (§6.4.1), report interval (§6.2, A.7).
The MOS is the ITU-T G.107 E-model reduced to what a G.711 gateway can measure (see `mos`).
"""

from __future__ import annotations

import math
import random
import struct
from dataclasses import dataclass

from aiortc.rtp import (
    RtcpByePacket,
    RtcpPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
    RtpPacket,
    clamp_packets_lost,
)

from firmware.media.rtp import SEQ_MOD, RtpHeader, RtpSender

MAX_DROPOUT = 3000  # A.1
MAX_MISORDER = 100  # A.1
NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)
RTCP_MIN_INTERVAL = 5.0  # §6.2 Tmin
SDES_CNAME = 1


class ReceptionStats:
    """Per-source receive statistics, RFC 3550 A.1 (sequence), A.3 (loss) and A.8 (jitter).

    No probation (A.1 MIN_SEQUENTIAL): the receiver's latch already vets the source. Duplicates count
    as received, so cumulative loss can go negative, exactly as §6.4.1 specifies.
    """

    def __init__(self, ssrc: int, seq: int, clock_rate: int) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.jitter = 0.0  # timestamp units, A.8
        self._last: tuple[float, int] | None = None  # (arrival in seconds, RTP timestamp)
        self._init_seq(seq)

    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.expected_prior = 0
        self.received_prior = 0

    def update(self, seq: int, timestamp: int, arrival: float) -> bool:
        """Account one packet (A.1 update_seq); False if it was judged out of this stream."""
        udelta = (seq - self.max_seq) % SEQ_MOD
        if udelta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += SEQ_MOD
            self.max_seq = seq
        elif udelta <= SEQ_MOD - MAX_MISORDER:
            if seq != self.bad_seq:
                self.bad_seq = (seq + 1) % SEQ_MOD
                return False
            self._init_seq(seq)  # A.1: two sequential packets after a big jump, the peer restarted
        self.received += 1
        last = self._last
        if last is not None:
            # A.8: D(i-1,i) = (Rj - Ri) - (Sj - Si), both in timestamp units (Sj - Si as signed 32 bits).
            sj_si = (timestamp - last[1] + (1 << 31)) % (1 << 32) - (1 << 31)
            d = (arrival - last[0]) * self.clock_rate - sj_si
            self.jitter += (abs(d) - self.jitter) / 16.0
        self._last = (arrival, timestamp)
        return True

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.extended_max - self.base_seq + 1

    @property
    def lost(self) -> int:
        return self.expected - self.received

    @property
    def jitter_ms(self) -> float:
        return 1000.0 * self.jitter / self.clock_rate

    def report(self, lsr: int, dlsr: int) -> RtcpReceiverInfo:
        """One report block (§6.4.1); resets the fraction-lost interval (A.3)."""
        expected_interval = self.expected - self.expected_prior
        lost_interval = expected_interval - (self.received - self.received_prior)
        self.expected_prior, self.received_prior = self.expected, self.received
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = (lost_interval << 8) // expected_interval
        return RtcpReceiverInfo(ssrc=self.ssrc, fraction_lost=min(fraction, 255),
                                packets_lost=clamp_packets_lost(self.lost),
                                highest_sequence=self.extended_max % (1 << 32), jitter=int(self.jitter),
                                lsr=lsr, dlsr=dlsr)


def ntp_middle(ntp: int) -> int:
    """The middle 32 bits of a 64-bit NTP timestamp, the unit of LSR/DLSR (§6.4.1)."""
    return (ntp >> 16) & 0xFFFFFFFF


def rtt_seconds(arrival_ntp: int, lsr: int, dlsr: int) -> float | None:
    """Round trip A - LSR - DLSR (§6.4.1, Figure 2), or None if the peer had no SR of ours."""
    if lsr == 0:
        return None
    rtt = (ntp_middle(arrival_ntp) - lsr - dlsr) % (1 << 32)
    return None if rtt >= 1 << 31 else rtt / 65536.0


def rtcp_interval(rng: random.Random, minimum: float = RTCP_MIN_INTERVAL, initial: bool = False) -> float:
    """§6.2 / A.7 for a two-party call: a G.711 call's 5 % RTCP share is far above what two members
    need, so the interval is Tmin (halved for the first report), randomised over [0.5, 1.5] and
    divided by e - 3/2 to compensate for timer reconsideration."""
    t = minimum / 2 if initial else minimum
    return t * rng.uniform(0.5, 1.5) / (math.e - 1.5)


# E-model, ITU-T G.107 (06/2015), reduced to the default planning values:
# R = Ro - Is - Id - Ie,eff + A with Ro - Is = 93.2 for all defaults (§7.7, Table 3), A = 0.
R_DEFAULT = 93.2
# ITU-T G.113 Appendix I, Table I.3: G.711 Ie = 0; Bpl = 4.3 without PLC, 25.1 with G.711 Appendix I PLC.
BPL_NO_PLC = 4.3
BPL_PLC = 25.1


def delay_impairment(one_way_ms: float) -> float:
    """Id reduced to Idd (G.107 eq. 7-27/7-28): with default echo loss the talker-echo terms are
    folded into R_DEFAULT, and the absolute-delay term is zero up to 100 ms mouth-to-ear."""
    if one_way_ms <= 100.0:
        return 0.0
    x = math.log10(one_way_ms / 100.0) / math.log10(2.0)
    return 25.0 * (math.pow(1 + x**6, 1 / 6) - 3 * math.pow(1 + (x / 3) ** 6, 1 / 6) + 2)


def mos(one_way_ms: float, loss_pct: float, plc: bool = True, ie: float = 0.0) -> float:
    """MOS-CQE from the E-model: Ie,eff = Ie + (95 - Ie) * Ppl / (Ppl/BurstR + Bpl) (G.107 eq. 7-29,
    BurstR = 1 for random loss), R -> MOS per G.107 Annex B eq. B-4."""
    bpl = BPL_PLC if plc else BPL_NO_PLC
    ie_eff = ie + (95.0 - ie) * loss_pct / (loss_pct + bpl)
    r = R_DEFAULT - delay_impairment(one_way_ms) - ie_eff
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6


@dataclass(frozen=True)
class CallStats:
    """What the call history keeps about a call's media."""

    packets_sent: int
    packets_received: int
    packets_lost: int
    loss_pct: float
    jitter_mean_ms: float
    jitter_max_ms: float
    rtt_ms: float | None
    mos: float


class RtcpSession:
    """RTCP for one RTP session: feed it received RTP and RTCP, send what `handle_timer` returns.

    `now` is the loop's monotonic clock; `wallclock` (Unix time at construction) turns it into the
    NTP timestamps of sender reports. Only our own clock's NTP values are compared (RTT), so a
    wrong wall clock costs nothing but cosmetic SR timestamps.
    """

    def __init__(self, sender: RtpSender, clock_rate: int, now: float, wallclock: float, cname: str,
                 rng: random.Random | None = None, min_interval: float = RTCP_MIN_INTERVAL) -> None:
        self.sender = sender
        self.clock_rate = clock_rate
        self.cname = cname.encode()
        self.rng = rng or random.SystemRandom()
        self.min_interval = min_interval
        self._epoch = wallclock + NTP_EPOCH_OFFSET - now
        self.source: ReceptionStats | None = None
        self.malformed = 0
        self.bye_received = False
        self._lsr = 0  # middle 32 bits of the peer's last SR NTP timestamp
        self._lsr_at = 0.0
        self._rtts: list[float] = []
        self._jitter_samples = 0
        self._jitter_sum = 0.0
        self._jitter_max = 0.0
        self._sent_at_last_report = 0
        self._next = now + rtcp_interval(self.rng, min_interval, initial=True)
        cname_item = RtcpSourceInfo(ssrc=sender.ssrc, items=[(SDES_CNAME, self.cname)])
        self._sdes = bytes(RtcpSdesPacket(chunks=[cname_item]))
        """The SDES CNAME packet (§6.5) every compound ends with: our SSRC and CNAME never change."""

    def ntp(self, now: float) -> int:
        t = now + self._epoch
        return (int(t) << 32) | int((t % 1.0) * (1 << 32))

    def rtp_received(self, packet: RtpHeader | RtpPacket, now: float) -> None:
        """Account an accepted RTP packet; a new SSRC starts fresh statistics (A.1 init_seq)."""
        source = self.source
        if source is None or source.ssrc != packet.ssrc:
            source = self.source = ReceptionStats(packet.ssrc, packet.sequence_number, self.clock_rate)
            self._lsr = 0
        if source.update(packet.sequence_number, packet.timestamp, now):
            j = source.jitter_ms
            self._jitter_samples += 1
            self._jitter_sum += j
            if j > self._jitter_max:
                self._jitter_max = j

    def receive(self, data: bytes, now: float) -> None:
        """Take a compound RTCP packet: remember SR times for our LSR/DLSR, measure RTT from blocks
        about us, note BYE. Malformed packets are counted and ignored."""
        try:
            packets = RtcpPacket.parse(data)
        except (ValueError, struct.error):
            self.malformed += 1
            return
        for p in packets:
            if isinstance(p, RtcpSrPacket | RtcpRrPacket):
                if isinstance(p, RtcpSrPacket) and (self.source is None or p.ssrc == self.source.ssrc):
                    self._lsr = ntp_middle(p.sender_info.ntp_timestamp)
                    self._lsr_at = now
                for block in p.reports:
                    if block.ssrc == self.sender.ssrc:
                        rtt = rtt_seconds(self.ntp(now), block.lsr, block.dlsr)
                        if rtt is not None:
                            self._rtts.append(rtt)
            elif isinstance(p, RtcpByePacket):
                self.bye_received = True

    def get_timer(self) -> float:
        return self._next

    def handle_timer(self, now: float) -> bytes | None:
        """The periodic SR or RR (with SDES CNAME, §6.1) if it is due."""
        if now < self._next:
            return None
        self._next = now + rtcp_interval(self.rng, self.min_interval)
        return self._compound(now)

    def bye(self, now: float) -> bytes:
        """Final report plus BYE (§6.6), sent when the call ends."""
        return self._compound(now) + bytes(RtcpByePacket(sources=[self.sender.ssrc]))

    def _compound(self, now: float) -> bytes:
        blocks = []
        if self.source is not None:
            dlsr = int((now - self._lsr_at) * 65536) if self._lsr else 0
            blocks.append(self.source.report(self._lsr, dlsr))
        ssrc = self.sender.ssrc
        report: RtcpSrPacket | RtcpRrPacket
        if self.sender.packets_sent > self._sent_at_last_report:  # §6.4: SR only if we sent since the last
            info = RtcpSenderInfo(ntp_timestamp=self.ntp(now), rtp_timestamp=self.sender.timestamp,
                                  packet_count=self.sender.packets_sent % (1 << 32),
                                  octet_count=self.sender.octets_sent % (1 << 32))
            report = RtcpSrPacket(ssrc=ssrc, sender_info=info, reports=blocks)
        else:
            report = RtcpRrPacket(ssrc=ssrc, reports=blocks)
        self._sent_at_last_report = self.sender.packets_sent
        return bytes(report) + self._sdes

    def summary(self, buffer_ms: float, ptime_ms: float, plc: bool = True) -> CallStats:
        """Totals for the call history. The MOS delay is RTT/2 (or none known) + jitter buffer + one
        packet of packetisation; loss is what we received, as the local listener heard it."""
        src = self.source
        expected = src.expected if src else 0
        lost = max(src.lost, 0) if src else 0
        loss_pct = 100.0 * lost / expected if expected > 0 else 0.0
        rtt = sum(self._rtts) / len(self._rtts) if self._rtts else None
        one_way = (rtt or 0.0) * 500.0 + buffer_ms + ptime_ms
        return CallStats(
            packets_sent=self.sender.packets_sent,
            packets_received=src.received if src else 0,
            packets_lost=lost,
            loss_pct=loss_pct,
            jitter_mean_ms=self._jitter_sum / self._jitter_samples if self._jitter_samples else 0.0,
            jitter_max_ms=self._jitter_max,
            rtt_ms=None if rtt is None else rtt * 1000.0,
            mos=mos(one_way, loss_pct, plc),
        )
