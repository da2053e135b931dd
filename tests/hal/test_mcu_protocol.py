"""The sans-IO MCU protocol with explicit time: framing, noise, retransmission, versions, clock."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from hal.events import Feed
from hal.mcu_protocol import (
    MAX_FRAME,
    TIMESTAMP_MOD,
    Alarm,
    Event,
    Frame,
    FrameDecoder,
    HookChange,
    LinkDown,
    LinkUp,
    McuClock,
    McuConnection,
    Rejected,
    RingTrip,
    State,
    crc16_ccitt_false,
    encode_frame,
)

FRAMES = [Frame(0, "HELLO", ("1.0",)), Frame(0x7F, "HOOK", ("1", "1", "FFFFFF00")), Frame(255, "PING")]
STREAM = b"".join(encode_frame(f) for f in FRAMES)


def hello_ack(seq: int = 0, version: str = "1.0", t_us: int = 0x1000, mask: str = "0") -> bytes:
    args = (version, "fw-2.1", "2", "33", "2500", "RING+POL", f"{t_us:08X}", mask)
    return encode_frame(Frame(seq, "ACK", args))


def up(now: float = 0.0, t_us: int = 0x1000, mask: str = "0") -> McuConnection:
    """A connection whose handshake just completed (its HELLO was seq 0)."""
    conn = McuConnection(now)
    conn.data_to_send()
    conn.receive(hello_ack(t_us=t_us, mask=mask), now)
    assert isinstance(conn.next_event(), LinkUp)
    return conn


def events(conn: McuConnection) -> list[Event]:
    out = []
    while (e := conn.next_event()) is not None:
        out.append(e)
    return out


def timed(evs: list[Event]) -> list[tuple[object, float]]:
    """Events with their time split off (as zero) so it can be compared approximately."""
    return [(replace(e, time=0), e.time) for e in evs if isinstance(e, HookChange | RingTrip | Alarm)]


def approx(t: float) -> object:
    return pytest.approx(t, abs=1e-6)


# -- framing -------------------------------------------------------------------------------------
def test_crc_check_value() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1  # the catalogue's check value for CCITT-FALSE


def test_frame_wire_format() -> None:
    crc = crc16_ccitt_false(b"0A,POL,1,0")
    assert encode_frame(Frame(0x0A, "POL", ("1", "0"))) == b"$0A,POL,1,0*%04X\n" % crc


@pytest.mark.parametrize("frame", [Frame(256, "PING"), Frame(0, "ping"), Frame(0, "POL", ("1,2",)),
                                   Frame(0, "POL", ("$",)), Frame(0, "RING", ("9" * MAX_FRAME,))])
def test_encode_refuses_what_framing_cannot_carry(frame: Frame) -> None:
    with pytest.raises(ValueError):
        encode_frame(frame)


def test_split_reads_at_every_byte_boundary() -> None:
    for i in range(len(STREAM) + 1):
        for j in range(i, len(STREAM) + 1):
            dec = FrameDecoder()
            got = dec.feed(STREAM[:i]) + dec.feed(STREAM[i:j]) + dec.feed(STREAM[j:])
            assert got == FRAMES, (i, j)


def test_noise_between_frames_is_skipped() -> None:
    rng = random.Random(1)
    for _ in range(200):
        frames = [Frame(rng.randrange(256), "HOOK",
                        (str(rng.randrange(2)), "0", f"{rng.getrandbits(32):08X}"))
                  for _ in range(5)]
        stream = b"".join(rng.randbytes(rng.randrange(40)) + encode_frame(f) for f in frames)
        dec = FrameDecoder()
        assert dec.feed(stream) == frames
    assert dec.stats.noise_bytes + dec.stats.malformed + dec.stats.crc_errors > 0


def test_every_single_bit_flip_is_rejected_and_the_next_frame_survives() -> None:
    good = encode_frame(FRAMES[1])
    for bit in range(len(good) * 8):
        bad = bytearray(good)
        bad[bit // 8] ^= 1 << (bit % 8)
        dec = FrameDecoder()
        assert dec.feed(bytes(bad) + good) == [FRAMES[1]], bit
        assert dec.stats.frames == 1


def test_inserted_bytes_break_only_their_frame() -> None:
    rng = random.Random(2)
    for _ in range(300):
        wire = bytearray(encode_frame(FRAMES[1]))
        pos = rng.randrange(1, len(wire) - 1)
        wire[pos:pos] = rng.randbytes(rng.randrange(1, 4))
        dec = FrameDecoder()
        assert dec.feed(bytes(wire) + STREAM) == FRAMES


def test_overlong_and_malformed_frames_are_counted() -> None:
    dec = FrameDecoder()
    body = b"01,PING,x"
    assert dec.feed(b"$" + b"A" * 500 + b"\n" + b"$01,PING*zzzz\n" + b"$" + body + b"*0000\n"
                    + b"$%s*%04X\n" % (b"1,PING", crc16_ccitt_false(b"1,PING")) + STREAM) == FRAMES
    assert (dec.stats.overlong, dec.stats.malformed, dec.stats.crc_errors) == (1, 2, 1)


# -- handshake -----------------------------------------------------------------------------------
def test_handshake_reports_the_mcu_and_its_hook_levels() -> None:
    conn = McuConnection(5.0)
    assert conn.data_to_send() == encode_frame(Frame(0, "HELLO", ("1.0",)))
    conn.set_polarity(1, True, 5.01)  # waits for the handshake
    assert conn.data_to_send() == b""
    conn.receive(hello_ack(mask="2"), 5.02)
    [ev] = events(conn)
    assert isinstance(ev, LinkUp)
    assert ev.hook == (False, True) and ev.time == 5.02
    assert ev.info.firmware == "fw-2.1" and ev.info.ports == 2 and ev.info.max_ring_duty == 0.33
    assert ev.info.max_burst_s == 2.5 and ev.info.capabilities == {"RING", "POL"}
    assert conn.data_to_send() == encode_frame(Frame(1, "POL", ("1", "1")))


@pytest.mark.parametrize(("version", "advice"),
                         [("2.0", "update the host"), ("0.9", "update the MCU firmware")])
def test_incompatible_major_version_is_refused(version: str, advice: str) -> None:
    conn = McuConnection(0.0)
    conn.receive(hello_ack(version=version), 0.01)
    [ev] = events(conn)
    assert isinstance(ev, LinkDown) and ev.fatal and advice in ev.reason and version in ev.reason
    assert conn.state is State.DOWN and conn.get_timer() is None


def test_newer_minor_version_is_accepted() -> None:
    conn = McuConnection(0.0)
    conn.receive(hello_ack(version="1.7"), 0.01)
    [ev] = events(conn)
    assert isinstance(ev, LinkUp) and ev.info.protocol == (1, 7)


def test_hello_refused_by_the_mcu_is_fatal() -> None:
    conn = McuConnection(0.0)
    conn.receive(encode_frame(Frame(0, "NAK", ("VERSION",))), 0.01)
    [ev] = events(conn)
    assert isinstance(ev, LinkDown) and ev.fatal and "VERSION" in ev.reason


def test_boot_while_connecting_is_ignored_but_ends_a_session() -> None:
    conn = McuConnection(0.0)
    conn.receive(encode_frame(Frame(0, "BOOT", ("1.0", "fw"))), 0.0)
    assert conn.state is State.CONNECTING
    conn = up()
    conn.receive(encode_frame(Frame(0, "BOOT", ("1.0", "fw"))), 1.0)
    assert events(conn) == [LinkDown("the MCU restarted")]


# -- commands, retransmission --------------------------------------------------------------------
def test_commands_are_sent_one_at_a_time_and_retransmitted_unchanged() -> None:
    conn = up()
    conn.ring(0, 25, ((400, 200), (400, 2000)), 1.0)
    conn.set_feed(1, Feed.OPEN, 1.0)
    ring = encode_frame(Frame(1, "RING", ("0", "25", "1", "400", "200", "400", "2000")))
    assert conn.data_to_send() == ring
    assert conn.get_timer() == pytest.approx(1.1)
    conn.handle_timer(1.1)
    assert conn.data_to_send() == ring and conn.stats.retransmits == 1
    conn.receive(encode_frame(Frame(1, "ACK")), 1.15)
    assert conn.data_to_send() == encode_frame(Frame(2, "FEED", ("1", "O")))
    conn.receive(encode_frame(Frame(1, "ACK")), 1.16)  # the answer to the retransmission: ignored
    assert not conn.idle
    conn.receive(encode_frame(Frame(2, "ACK")), 1.17)
    assert conn.idle and events(conn) == []


def test_unanswered_command_gives_up_and_link_goes_down() -> None:
    conn = up()
    conn.stop_ring(0, 1.0)
    first = conn.data_to_send()
    t = 1.0
    for _ in range(3):
        t = conn.get_timer() or 0.0
        conn.handle_timer(t)
        assert conn.data_to_send() == first
    conn.handle_timer(conn.get_timer() or 0.0)
    assert events(conn) == [LinkDown("RINGSTOP not acknowledged after 4 tries")]
    conn.set_polarity(0, True, t + 1)
    assert conn.data_to_send() == b"" and conn.get_timer() is None


def test_unanswered_hello_gives_up() -> None:
    conn = McuConnection(0.0)
    for _ in range(4):
        conn.handle_timer(conn.get_timer() or 0.0)
    assert events(conn) == [LinkDown("HELLO not acknowledged after 4 tries")]


def test_nak_is_reported() -> None:
    conn = up()
    conn.ring(0, 20, ((2000, 4000),), 1.0)
    conn.receive(encode_frame(Frame(1, "NAK", ("OFFHOOK",))), 1.01)
    [ev] = events(conn)
    assert isinstance(ev, Rejected) and ev.cmd == "RING" and ev.reason == "OFFHOOK"


def test_mcu_without_a_session_sends_us_back_to_hello() -> None:
    conn = up()
    conn.set_feed(0, Feed.IDLE, 1.0)
    conn.receive(encode_frame(Frame(1, "NAK", ("NOSESSION",))), 1.01)
    assert events(conn) == [LinkDown("the MCU ended the session")]


def test_sequence_numbers_wrap() -> None:
    conn = up()
    seqs = []
    for i in range(300):
        conn.set_polarity(0, bool(i % 2), 1.0 + i)
        seq = int(conn.data_to_send()[1:3], 16)
        seqs.append(seq)
        conn.receive(encode_frame(Frame(seq, "ACK")), 1.0 + i)
    assert seqs == [(1 + i) % 256 for i in range(300)]
    assert conn.state is State.UP and conn.idle


def test_keepalive_ping_when_idle_and_link_timeout_when_mcu_silent() -> None:
    conn = up(now=0.0)
    assert conn.get_timer() == pytest.approx(1.0)
    conn.handle_timer(1.0)
    assert conn.data_to_send() == encode_frame(Frame(1, "PING"))
    conn.receive(encode_frame(Frame(1, "ACK")), 1.01)
    conn.handle_timer(2.0)  # heard from the MCU at 1.01: still up
    assert conn.state is State.UP
    conn.handle_timer(3.01)
    assert events(conn) == [LinkDown("no frame from the MCU for 2 s")]


def test_garbage_frames_with_good_crc_are_counted_not_fatal() -> None:
    conn = up()
    for frame in [Frame(0, "HB", ("xyz", "0")), Frame(1, "HOOK", ("7", "1", "00000000")),
                  Frame(2, "HOOK", ("0", "2", "00000000")), Frame(3, "WHAT"),
                  Frame(4, "HOOK", ("+0", "1", "0"))]:
        conn.receive(encode_frame(frame), 1.0)
    assert conn.stats.malformed == 5 and conn.state is State.UP and events(conn) == []


# -- MCU events, clock ---------------------------------------------------------------------------
def test_hook_events_are_acked_deduplicated_and_mapped_to_host_time() -> None:
    conn = up(now=10.0, t_us=5_000_000)  # MCU time 5 s at host time 10 s
    hook = encode_frame(Frame(0, "HOOK", ("1", "1", f"{5_200_000:08X}")))
    conn.receive(hook, 10.21)
    conn.receive(hook, 10.31)  # our ACK was lost, the MCU repeats
    assert conn.data_to_send() == encode_frame(Frame(0, "ACK")) * 2
    assert timed(events(conn)) == [(HookChange(1, True, 0), approx(10.2))]
    assert conn.stats.duplicates == 1
    conn.receive(encode_frame(Frame(1, "RTRIP", ("1", f"{5_300_000:08X}"))) +
                 encode_frame(Frame(2, "ALARM", ("-", "OVERTEMP", f"{5_400_000:08X}"))), 10.5)
    assert timed(events(conn)) == [(RingTrip(1, 0), approx(10.3)), (Alarm(None, "OVERTEMP", 0), approx(10.4))]


def test_events_before_the_handshake_are_not_accepted() -> None:
    conn = McuConnection(0.0)
    conn.data_to_send()
    conn.receive(encode_frame(Frame(0, "HOOK", ("0", "1", "00000000"))), 0.01)
    assert conn.data_to_send() == b"" and events(conn) == []


def test_timestamps_across_the_counter_wrap() -> None:
    near = TIMESTAMP_MOD - 100_000  # 0.1 s before the wrap
    conn = up(now=50.0, t_us=near)
    conn.receive(encode_frame(Frame(0, "HB", (f"{50_000:08X}", "0"))), 50.15)  # 0.15 s later, wrapped
    conn.receive(encode_frame(Frame(0, "HOOK", ("0", "1", f"{TIMESTAMP_MOD - 20_000:08X}"))), 50.16)
    conn.receive(encode_frame(Frame(1, "HOOK", ("0", "0", f"{40_000:08X}"))), 50.17)
    assert timed(events(conn)) == [(HookChange(0, True, 0), approx(50.08)),
                                   (HookChange(0, False, 0), approx(50.14))]


def test_clock_offset_is_the_least_latency_and_follows_slow_drift() -> None:
    clock = McuClock()
    rng = random.Random(3)
    for i in range(100):  # MCU time i s arrives 1..20 ms late at host time 1000 + i
        clock.sync(i * 1_000_000, 1000.0 + i + rng.uniform(0.001, 0.020))
    assert 1099.5 < clock.to_host(99_500_000, 2000.0) < 1099.505  # late by the least latency, not 20 ms
    for i in range(100, 200):  # the MCU crystal now runs 100 ppm slow
        clock.sync(round(i * 1_000_000 * (1 - 100e-6)), 1000.0 + i + 0.001)
    mcu = round(199 * 1_000_000 * (1 - 100e-6))
    assert clock.to_host(mcu, 2000.0) == pytest.approx(1199.0, abs=0.003)


def test_mapped_times_are_monotonic_and_never_in_the_future() -> None:
    clock = McuClock()
    clock.sync(1_000_000, 10.5)
    first = clock.to_host(1_400_000, 11.0)
    clock.sync(1_500_000, 10.95)  # a faster frame: the offset drops by 50 ms
    assert clock.to_host(1_410_000, 11.0) >= first
    assert clock.to_host(9_000_000, 11.0) == 11.0
