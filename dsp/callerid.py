"""On-hook and off-hook caller ID: FSK messages (Bell 202 / V.23), alerting signals, VMWI.

Sources for every figure are cited where it is defined:

- Telcordia GR-30-CORE (voiceband data transmission interface: Bell 202 tones, SDMF/MDMF layout,
  channel seizure and mark signal), SR-TSV-002476 / GR-575 (CAS for off-hook "type II" caller ID),
  GR-1401 (visual message waiting indicator).
- ETSI EN 300 659-1 (on-hook data transmission: DT-AS, RP-AS, timing, V.23 physical layer),
  EN 300 659-2 (off-hook data transmission), EN 300 659-3 (message and parameter codes).

A burst on the line is: channel seizure (alternating 0/1, on-hook only), a mark signal, then the message
`type, length, payload..., checksum`, every byte framed as start bit + 8 bits LSB first + stop bit.

Public API::

    generate_callerid(number, name, when, standard='bell202', fmt='mdmf', sample_rate=8000, *,
                      absence=Absence.UNAVAILABLE, call_type=None, offhook=False, level_dbm0=-13.5)
    generate_vmwi(active, standard='bell202', fmt='mdmf', sample_rate=8000, *, message_count=None,
                  offhook=False, level_dbm0=-13.5)
    decode_callerid(samples, sample_rate=8000, standard=None) -> CallerId | None
    generate_dtmf_callerid(number, sample_rate=8000, *, absence=Absence.UNAVAILABLE, terminator='#', ...)
    decode_dtmf_callerid(samples, sample_rate=8000) -> CallerId | None
    generate_alert(kind='dt-as'|'cas', sample_rate=8000, level_dbm0=-15.0) -> int16
    detect_alert(samples, sample_rate=8000, min_ms=40.0) -> [(start_s, end_s)]
    TIMING (AlertTiming: DT-AS / RP-AS / CAS gaps), CAS_ACK_DIGITS

Lower level pieces for tests and the simulator: callerid_message / vmwi_message (message bytes),
fsk_burst(message, ...) (any message as a burst), parse_message(bytes) -> CallerId.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from dsp.dtmf import detect_dtmf, generate_dtmf
from dsp.fsk import (
    BELL202,
    DEMOD_RATE,
    V23,
    FramingError,
    FskStandard,
    UartReader,
    discriminate,
    message_starts,
    modulate,
    standard_named,
    to_demod_rate,
    uart_bits,
)
from dsp.level import DBM0_RMS
from dsp.synth import to_int16, tone

Int16Array = npt.NDArray[np.int16]
Standard = Literal["bell202", "v23"]
Format = Literal["mdmf", "sdmf"]
Signalling = Literal["bell202", "v23", "dtmf"]
"""What a decoded message came by: an FSK modem, or DTMF digits."""

# --- Physical layer -------------------------------------------------------------------------------

SEIZURE_BITS = 300
"""Channel seizure: 300 continuous bits of alternating 0 and 1 (GR-30-CORE §3.2; EN 300 659-1 §6.2.2)."""
MARK_BITS = 180
"""Mark signal after the seizure: 180 bits (GR-30-CORE §3.2; EN 300 659-1 §6.2.2: 180 +- 25 bits)."""
MARK_BITS_TOLERANCE = 25
"""EN 300 659-1 §6.2.2 and EN 300 659-2: the mark signal may be 25 bits shorter or longer."""
OFFHOOK_MARK_BITS = 80
"""Off-hook (type II) data: no channel seizure, 80 mark bits (GR-30-CORE / SR-TSV-002476;
EN 300 659-2: 80 +- 25 bits)."""
MIN_MARK_BITS = 40
"""The receiver wants this much mark before a message; below the shortest legal run (80 - 25 = 55)."""
DEFAULT_LEVEL_DBM0 = -13.5
"""Nominal transmit level of the FSK burst: -13.5 dBm0 (EN 300 659-1 §6.2; GR-30-CORE -13.5 dBm)."""

# --- Messages -------------------------------------------------------------------------------------

SDMF_CALL = 0x04
"""Single data message format, caller ID: MMDDHHMM + number or 'O'/'P' (GR-30-CORE §5.3)."""
SDMF_VMWI = 0x06
"""SDMF message waiting: 3 bytes 0x42 (on) or 0x6F (off) (GR-30-CORE §5.3 / GR-1401)."""
MDMF_CALL = 0x80
"""Multiple data message format, call set-up (GR-30-CORE §5.4; EN 300 659-3 §5.2)."""
MDMF_VMWI = 0x82
"""MDMF message waiting indicator (GR-1401; EN 300 659-3 §5.2)."""

PARAM_DATE_TIME = 0x01
PARAM_NUMBER = 0x02
PARAM_NUMBER_ABSENCE = 0x04
PARAM_NAME = 0x07
PARAM_NAME_ABSENCE = 0x08
PARAM_VISUAL_INDICATOR = 0x0B
PARAM_CALL_TYPE = 0x11
PARAM_MESSAGE_COUNT = 0x13
"""MDMF parameter types (GR-30-CORE §5.4 for 0x01-0x08; EN 300 659-3 §5.3 for all, incl. 0x0B visual
indicator, 0x11 call type, 0x13 number of messages)."""

VMWI_ON = 0xFF
VMWI_OFF = 0x00
"""Visual indicator parameter values: 0xFF activate, 0x00 deactivate (EN 300 659-3 §5.3; GR-1401)."""
SDMF_VMWI_ON = b"\x42\x42\x42"
SDMF_VMWI_OFF = b"\x6f\x6f\x6f"

MAX_NUMBER = {"sdmf": 10, "bell202": 15, "v23": 20}
"""Longest number: SDMF 10 digits, Bell MDMF 15 (GR-30-CORE §5), ETSI 20 (EN 300 659-3 §5.3)."""
MAX_NAME = {"bell202": 15, "v23": 50}
"""Longest name: Bell MDMF 15 characters (GR-30-CORE §5.4), ETSI 50 (EN 300 659-3 §5.3)."""


class Absence(StrEnum):
    """Reason a number or name is missing, the same code in SDMF and MDMF (GR-30-CORE; EN 300 659-3)."""

    UNAVAILABLE = "O"
    """'O': out of area / unavailable."""
    PRIVATE = "P"
    """'P': private / withheld by the caller."""


class MessageTime(NamedTuple):
    """Date and time as the message carries it: no year, no seconds."""

    month: int
    day: int
    hour: int
    minute: int


@dataclass(frozen=True)
class CallerId:
    """One decoded caller-ID or VMWI message. Fields the message did not carry are None."""

    standard: Signalling
    fmt: Format | Literal["dtmf"]
    message_type: int
    """FSK message type byte (0x04, 0x06, 0x80, 0x82...); for DTMF, the code of the first digit."""
    number: str | None = None
    name: str | None = None
    when: MessageTime | None = None
    number_absence: Absence | None = None
    name_absence: Absence | None = None
    call_type: int | None = None
    vmwi: bool | None = None
    message_count: int | None = None
    checksum_ok: bool = True
    """FSK: the checksum matched. DTMF: the digit string had a known start and its terminator."""
    well_formed: bool = True
    """Known message type, parameters that exactly fill the payload, printable text, a real date: an
    8-bit checksum alone lets through 1 in 256 corrupted messages, this catches most of them."""
    message: bytes = b""
    """The whole message as received: FSK type, length, payload, checksum; or the DTMF digits."""
    start_s: float = 0.0
    """Time of the first start bit in the analysed audio."""

    @property
    def valid(self) -> bool:
        """Whether to believe the message: checksum right and content well formed."""
        return self.checksum_ok and self.well_formed


def checksum(data: bytes) -> int:
    """Two's complement of the modulo-256 sum of type, length and payload (GR-30-CORE; EN 300 659-3)."""
    return -sum(data) & 0xFF


def _frame(message_type: int, payload: bytes) -> bytes:
    if len(payload) > 255:
        raise ValueError(f"message payload is {len(payload)} bytes; the length field holds at most 255")
    head = bytes([message_type, len(payload)]) + payload
    return head + bytes([checksum(head)])


def _ascii(text: str, what: str, limit: int) -> bytes:
    """`text` as printable ASCII; accents are dropped (a SIP display name is Unicode, the display is not)."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore")
    if any(c < 0x20 or c > 0x7E for c in plain):
        raise ValueError(f"{what} {text!r} has control characters")
    if len(plain) > limit:
        raise ValueError(f"{what} {text!r} is longer than {limit} characters")
    return plain


def _date(when: datetime) -> bytes:
    return f"{when.month:02d}{when.day:02d}{when.hour:02d}{when.minute:02d}".encode("ascii")


def callerid_message(number: str | None, name: str | None, when: datetime | None,
                     standard: Standard = "bell202", fmt: Format = "mdmf", *,
                     absence: Absence | str = Absence.UNAVAILABLE, call_type: int | None = None) -> bytes:
    """The caller-ID message bytes (type, length, payload, checksum) that `generate_callerid` sends.

    A missing (None or '') number or name is replaced by its absence reason `absence`. SDMF carries no
    name and needs a date (its date field is mandatory, GR-30-CORE §5.3).
    """
    standard_named(standard)
    reason = Absence(absence).value.encode("ascii")
    if fmt == "sdmf":
        if when is None:
            raise ValueError("SDMF needs a date and time (the field is mandatory)")
        if call_type is not None:
            raise ValueError("SDMF has no call type; use fmt='mdmf'")
        digits = _ascii(number, "number", MAX_NUMBER["sdmf"]) if number else reason
        return _frame(SDMF_CALL, _date(when) + digits)
    if fmt != "mdmf":
        raise ValueError(f"unknown message format {fmt!r}; expected 'mdmf' or 'sdmf'")
    params: list[tuple[int, bytes]] = []
    if when is not None:
        params.append((PARAM_DATE_TIME, _date(when)))
    if number:
        params.append((PARAM_NUMBER, _ascii(number, "number", MAX_NUMBER[standard])))
    else:
        params.append((PARAM_NUMBER_ABSENCE, reason))
    if name:
        params.append((PARAM_NAME, _ascii(name, "name", MAX_NAME[standard])))
    else:
        params.append((PARAM_NAME_ABSENCE, reason))
    if call_type is not None:
        params.append((PARAM_CALL_TYPE, bytes([call_type])))
    return _frame(MDMF_CALL, b"".join(bytes([code, len(value)]) + value for code, value in params))


def vmwi_message(active: bool, fmt: Format = "mdmf", *, message_count: int | None = None) -> bytes:
    """The message-waiting message bytes: MDMF 0x82 with parameter 0x0B, or SDMF 0x06."""
    if fmt == "sdmf":
        if message_count is not None:
            raise ValueError("SDMF message waiting has no message count; use fmt='mdmf'")
        return _frame(SDMF_VMWI, SDMF_VMWI_ON if active else SDMF_VMWI_OFF)
    if fmt != "mdmf":
        raise ValueError(f"unknown message format {fmt!r}; expected 'mdmf' or 'sdmf'")
    payload = bytes([PARAM_VISUAL_INDICATOR, 1, VMWI_ON if active else VMWI_OFF])
    if message_count is not None:
        if not 0 <= message_count <= 255:
            raise ValueError(f"message count {message_count} does not fit one byte")
        payload += bytes([PARAM_MESSAGE_COUNT, 1, message_count])
    return _frame(MDMF_VMWI, payload)


def preamble_bits(offhook: bool = False) -> npt.NDArray[np.uint8]:
    """Bits before the message: seizure (0101..., starting with 0) and 180 marks, or 80 marks off-hook."""
    if offhook:
        return np.ones(OFFHOOK_MARK_BITS, np.uint8)
    seizure = np.arange(SEIZURE_BITS, dtype=np.uint8) % 2
    return np.concatenate([seizure, np.ones(MARK_BITS, np.uint8)])


def fsk_burst(message: bytes, standard: Standard = "bell202", sample_rate: int = 8000, *,
              offhook: bool = False, level_dbm0: float = DEFAULT_LEVEL_DBM0) -> Int16Array:
    """The FSK burst for `message`: seizure (on-hook only), mark signal, then the framed bytes."""
    bits = np.concatenate([preamble_bits(offhook), uart_bits(message)])
    return to_int16(modulate(bits, standard_named(standard), sample_rate, level_dbm0))


def generate_callerid(number: str | None, name: str | None, when: datetime | None,
                      standard: Standard = "bell202", fmt: Format = "mdmf", sample_rate: int = 8000, *,
                      absence: Absence | str = Absence.UNAVAILABLE, call_type: int | None = None,
                      offhook: bool = False, level_dbm0: float = DEFAULT_LEVEL_DBM0) -> Int16Array:
    """The caller-ID FSK burst (seizure, marks, message, checksum) as int16 at `sample_rate`.

    `number`/`name` None or '' send the absence reason `absence` ('O' unavailable, 'P' private).
    `offhook=True` gives the type II (call waiting) burst: no seizure, 80 marks; send it after the
    CAS (`generate_alert('cas')`) and the phone's acknowledgement.
    """
    message = callerid_message(number, name, when, standard, fmt, absence=absence, call_type=call_type)
    return fsk_burst(message, standard, sample_rate, offhook=offhook, level_dbm0=level_dbm0)


def generate_vmwi(active: bool, standard: Standard = "bell202", fmt: Format = "mdmf",
                  sample_rate: int = 8000, *, message_count: int | None = None, offhook: bool = False,
                  level_dbm0: float = DEFAULT_LEVEL_DBM0) -> Int16Array:
    """The FSK burst that turns a phone's message-waiting lamp on (`active`) or off."""
    message = vmwi_message(active, fmt, message_count=message_count)
    return fsk_burst(message, standard, sample_rate, offhook=offhook, level_dbm0=level_dbm0)


# --- Receive --------------------------------------------------------------------------------------


KNOWN_TYPES = frozenset({SDMF_CALL, SDMF_VMWI, MDMF_CALL, MDMF_VMWI, 0x86, 0x89})
"""Message types a receiver believes: GR-30-CORE's four, plus EN 300 659-3 advice of charge (0x86) and
short message service (0x89), whose parameters it passes over."""


def _text(value: bytes) -> str:
    return value.decode("ascii", "replace")


def _printable(value: bytes) -> bool:
    return all(0x20 <= c <= 0x7E for c in value)


def _time(value: bytes) -> MessageTime | None:
    """MMDDHHMM as a MessageTime; None unless it is a real date and time."""
    text = _text(value)
    if len(text) != 8 or not text.isdigit():
        return None
    t = MessageTime(int(text[0:2]), int(text[2:4]), int(text[4:6]), int(text[6:8]))
    return t if 1 <= t.month <= 12 and 1 <= t.day <= 31 and t.hour <= 23 and t.minute <= 59 else None


def _absence(value: bytes) -> Absence | None:
    try:
        return Absence(_text(value))
    except ValueError:
        return None


def parse_message(message: bytes, standard: Standard = "bell202", start_s: float = 0.0) -> CallerId:
    """Fields of a received message (type, length, payload, checksum).

    Garbled content never raises: unreadable fields come back None and `valid` is False.
    """
    if len(message) < 3:
        raise ValueError(f"a message has at least type, length and checksum; got {len(message)} bytes")
    mtype, length = message[0], message[1]
    payload = message[2:2 + length]
    ok = len(message) == length + 3 and checksum(message[:-1]) == message[-1]
    common = {"standard": standard, "message_type": mtype, "checksum_ok": ok, "message": bytes(message),
              "start_s": start_s}
    if mtype == SDMF_CALL:
        rest = payload[8:]
        absence = _absence(rest) if len(rest) == 1 else None
        when = _time(payload[:8])
        formed = when is not None and len(rest) > 0 and _printable(rest)
        return CallerId(fmt="sdmf", when=when, number=None if absence else _text(rest),
                        number_absence=absence, well_formed=formed, **common)  # type: ignore[arg-type]
    if mtype == SDMF_VMWI:
        formed = payload in (SDMF_VMWI_ON, SDMF_VMWI_OFF)
        return CallerId(fmt="sdmf", vmwi=payload == SDMF_VMWI_ON, well_formed=formed,
                        **common)  # type: ignore[arg-type]
    fields: dict[str, object] = {}
    formed = mtype in KNOWN_TYPES
    i = 0
    while i + 2 <= len(payload):
        code, size = payload[i], payload[i + 1]
        value = payload[i + 2:i + 2 + size]
        i += 2 + size
        if code in (PARAM_DATE_TIME, PARAM_NUMBER, PARAM_NUMBER_ABSENCE, PARAM_NAME, PARAM_NAME_ABSENCE):
            formed = formed and _printable(value)
        if code == PARAM_DATE_TIME:
            formed = formed and _time(value) is not None
        if code == PARAM_DATE_TIME:
            fields["when"] = _time(value)
        elif code == PARAM_NUMBER:
            fields["number"] = _text(value)
        elif code == PARAM_NUMBER_ABSENCE:
            fields["number_absence"] = _absence(value)
        elif code == PARAM_NAME:
            fields["name"] = _text(value)
        elif code == PARAM_NAME_ABSENCE:
            fields["name_absence"] = _absence(value)
        elif code == PARAM_VISUAL_INDICATOR and value:
            fields["vmwi"] = value[0] != VMWI_OFF
        elif code == PARAM_CALL_TYPE and value:
            fields["call_type"] = value[0]
        elif code == PARAM_MESSAGE_COUNT and value:
            fields["message_count"] = value[0]
    formed = formed and i == len(payload)
    return CallerId(fmt="mdmf", well_formed=formed, **common, **fields)  # type: ignore[arg-type]


def _decode_with(x: npt.NDArray[np.float64], std: FskStandard) -> CallerId | None:
    """First message in `x` demodulated as `std`: the first valid one, else the first framed."""
    soft = discriminate(x, std)
    reader = UartReader(soft, std.baud)
    fallback: CallerId | None = None
    for candidate in message_starts(soft, MIN_MARK_BITS, std.baud):
        try:
            edge = reader.next_edge(float(candidate) - 1.0)
            if edge > candidate + 1:
                continue  # the candidate was a noise blip; a later candidate covers the real edge
            head, end = reader.read(edge, 2)
            body, _ = reader.read(reader.next_edge(end), head[1] + 1)
        except FramingError:
            continue
        result = parse_message(head + body, std.name, edge / DEMOD_RATE)  # type: ignore[arg-type]
        if result.valid:
            return result
        fallback = fallback or result
    return fallback


def _mark_power(x: npt.NDArray[np.float64], start_s: float, freq: float) -> float:
    """Power at `freq` over the mark run just before `start_s` (tells Bell 202 from V.23 marks)."""
    end = int(start_s * DEMOD_RATE) - 8
    seg = x[max(end - int(MIN_MARK_BITS * DEMOD_RATE / 1200), 0):end]
    n = np.arange(len(seg))
    return float(np.abs(np.dot(seg, np.exp(-2j * np.pi * freq * n / DEMOD_RATE))) ** 2)


def decode_callerid(samples: npt.ArrayLike, sample_rate: int = 8000,
                    standard: Standard | None = None) -> CallerId | None:
    """Find and decode the first caller-ID / VMWI message in `samples`; None if there is none.

    With `standard=None` both tone plans are tried: the two are close enough that either receiver
    reads the other's burst, so the modem is named by the frequency of the mark run (1200 or 1300 Hz).
    A message that fails its checksum or is malformed is still returned, with `valid` False; a receiver
    should display only `valid` messages.
    """
    x = to_demod_rate(samples, sample_rate)
    if standard is not None:
        return _decode_with(x, standard_named(standard))
    results = [r for r in (_decode_with(x, BELL202), _decode_with(x, V23)) if r is not None]
    if not results:
        return None
    good = [r for r in results if r.valid] or results
    first = min(good, key=lambda r: r.start_s)
    is_v23 = _mark_power(x, first.start_s, V23.mark_hz) > _mark_power(x, first.start_s, BELL202.mark_hz)
    wanted: Standard = "v23" if is_v23 else "bell202"
    return next((r for r in good if r.standard == wanted), replace(first, standard=wanted))


# --- Alerting signals -----------------------------------------------------------------------------

ALERT_TONES_HZ = (2130.0, 2750.0)
"""DT-AS (EN 300 659-1 §6.1.2) and CAS (SR-TSV-002476) use the same pair: 2130 Hz + 2750 Hz (+-0.5 %)."""
DT_AS_MS = 100.0
"""DT-AS duration 100 ms +- 10 ms (EN 300 659-1 §6.1.2)."""
CAS_MS = 80.0
"""CAS duration 80 ms (75..85 ms) (SR-TSV-002476; GR-30-CORE type II)."""
ALERT_LEVEL_DBM0 = -15.0
"""Default level of each alert tone. The documents give receive ranges, not one nominal level; -15 dBm0
sits near the top of the commonly quoted CAS range (-14..-32 dBm per tone, SR-TSV-002476)."""


@dataclass(frozen=True)
class AlertTiming:
    """Timing around a data burst, in seconds, as (minimum, maximum); None = no upper bound stated."""

    dt_as_after_reversal: tuple[float, float | None] = (0.100, None)
    """EN 300 659-1 §6.1.1: DT-AS starts >= 100 ms after the line reversal."""
    fsk_after_dt_as: tuple[float, float | None] = (0.045, 0.500)
    """EN 300 659-1 §6.1.1: FSK starts 45..500 ms after the end of DT-AS."""
    rp_as: tuple[float, float | None] = (0.200, 0.300)
    """EN 300 659-1 §6.1.3: RP-AS, a 200..300 ms ring burst, rung by the HAL."""
    fsk_after_rp_as: tuple[float, float | None] = (0.500, 2.000)
    """EN 300 659-1 §6.1.3: FSK starts 500..2000 ms after the end of RP-AS."""
    fsk_after_first_ring: tuple[float, float | None] = (0.500, None)
    """GR-30-CORE §3.2 (Bell): FSK starts >= 500 ms after the first ring (and ends before the second)."""
    ring_after_fsk: tuple[float, float | None] = (0.200, None)
    """GR-30-CORE §3.2 / EN 300 659-1 §6.1.1: >= 200 ms of silence between the burst and the next ring."""
    cas_ack_window: tuple[float, float | None] = (0.0, 0.160)
    """SR-TSV-002476: the phone acknowledges CAS with DTMF 'D' (or 'A' for ADSI sets) within 160 ms."""
    fsk_after_cas_ack: tuple[float, float | None] = (0.050, 0.500)
    """SR-TSV-002476: the type II FSK starts 50..500 ms after the acknowledgement."""


TIMING = AlertTiming()
CAS_ACK_DIGITS = ("D", "A")
"""Acknowledgements a type II phone may send after CAS: 'D' (non-ADSI), 'A' (ADSI) (SR-TSV-002476)."""


def generate_alert(kind: Literal["dt-as", "cas"] = "dt-as", sample_rate: int = 8000,
                   level_dbm0: float = ALERT_LEVEL_DBM0) -> Int16Array:
    """The DT-AS (100 ms) or CAS (80 ms) dual tone, each tone at `level_dbm0`."""
    if kind not in ("dt-as", "cas"):
        raise ValueError(f"unknown alert {kind!r}; expected 'dt-as' or 'cas'")
    ms = DT_AS_MS if kind == "dt-as" else CAS_MS
    return to_int16(tone(ALERT_TONES_HZ, level_dbm0, round(ms * sample_rate / 1000), sample_rate))


ALERT_FRAME = 80
"""Detector window: 10 ms at 8 kHz, so the two tones (620 Hz apart) fall in separate DFT bins."""
ALERT_HOP = 8
"""Detector step: 1 ms, the resolution of the reported start and end."""
ALERT_MIN_DBM0 = -45.0
"""Quietest frame the detector considers."""


def detect_alert(samples: npt.ArrayLike, sample_rate: int = 8000,
                 min_ms: float = 40.0) -> list[tuple[float, float]]:
    """(start_s, end_s) of every 2130 + 2750 Hz dual tone (DT-AS or CAS) lasting >= `min_ms`.

    A 10 ms window passes when both tones are present and together carry more than half of its
    energy; for a clean tone that is exactly when the window's centre lies inside the tone, so the run
    of passing centres measures the tone's duration to within one hop.
    """
    x = to_demod_rate(samples, sample_rate)
    if len(x) < ALERT_FRAME:
        return []
    frames = np.lib.stride_tricks.sliding_window_view(x, ALERT_FRAME)[::ALERT_HOP]
    n = np.arange(ALERT_FRAME)
    basis = np.exp(-2j * np.pi * np.outer(n, ALERT_TONES_HZ) / DEMOD_RATE)
    share = 2.0 * np.abs(frames @ basis) ** 2 / ALERT_FRAME
    energy = np.sum(frames * frames, axis=1)
    loud = energy > ALERT_FRAME * (DBM0_RMS * 10.0 ** (ALERT_MIN_DBM0 / 20.0)) ** 2
    safe = np.maximum(energy, 1e-300)
    p = share / safe[:, None]
    hit = loud & (p.sum(axis=1) > 0.5) & (p.min(axis=1) > 0.15)
    padded = np.concatenate([[False], hit, [False]]).astype(np.int8)
    starts = np.flatnonzero(np.diff(padded) == 1)
    ends = np.flatnonzero(np.diff(padded) == -1)
    centre = ALERT_FRAME / 2
    out = []
    for s, e in zip(starts, ends, strict=True):
        t0 = (s * ALERT_HOP + centre) / DEMOD_RATE
        t1 = ((e - 1) * ALERT_HOP + centre + ALERT_HOP) / DEMOD_RATE
        if (t1 - t0) * 1000.0 >= min_ms:
            out.append((float(t0), float(t1)))
    return out


# --- DTMF caller ID (CLIP by DTMF) ----------------------------------------------------------------

DtmfTerminator = Literal["#", "C"]

DTMF_NUMBER_START = "A"
"""Both DTMF CLIP variants start the calling number with 'A' (Danish/Dutch/Swedish CLIP spec as
documented by spandsp adsi.h, CLIP_DTMF_*_CALLER_NUMBER)."""
DTMF_HASH_ABSENCE = {Absence.PRIVATE: "D1", Absence.UNAVAILABLE: "D3"}
"""'#'-terminated variant (Denmark, Sweden...): D1# restricted by the caller, D2# international call
(out of area), D3# not available for technical reasons (TeleDanmark CLIP spec; spandsp adsi.h)."""
DTMF_HASH_OUT_OF_AREA = "D2"
DTMF_C_ABSENCE = {Absence.PRIVATE: "B00", Absence.UNAVAILABLE: "B10"}
"""'C'-terminated variant (Netherlands, Brazil...): B00 private/restricted, B10 not available
(spandsp adsi.h CLIP_DTMF_C_ABSENCE; other sources swap the two codes, see docs)."""
DTMF_ON_MS = 70.0
DTMF_OFF_MS = 70.0
"""Digit and pause length: >= 50 ms each must be detected by the phone (TeleDanmark CLIP spec); 70 ms
keeps a 10-digit number under 1.6 s, inside the gap before the first ring."""
DTMF_LEVEL_DBM0 = -10.0
"""Per-tone level: inside the -4..-28 dBm receive window of the TeleDanmark CLIP spec."""


def dtmf_callerid_digits(number: str | None, *, absence: Absence | str = Absence.UNAVAILABLE,
                         terminator: DtmfTerminator = "#") -> str:
    """The DTMF digit string: 'A<number>#' / 'A<number>C', or the absence code ('D1#', 'B00C'...)."""
    if terminator not in ("#", "C"):
        raise ValueError(f"unknown DTMF CLIP terminator {terminator!r}; expected '#' or 'C'")
    if number:
        if not number.isdigit():
            raise ValueError(f"number {number!r} cannot be sent by DTMF CLIP (digits only)")
        return DTMF_NUMBER_START + number + terminator
    codes = DTMF_HASH_ABSENCE if terminator == "#" else DTMF_C_ABSENCE
    return codes[Absence(absence)] + terminator


def generate_dtmf_callerid(number: str | None, sample_rate: int = 8000, *,
                           absence: Absence | str = Absence.UNAVAILABLE, terminator: DtmfTerminator = "#",
                           on_ms: float = DTMF_ON_MS, off_ms: float = DTMF_OFF_MS,
                           level_dbm0: float = DTMF_LEVEL_DBM0) -> Int16Array:
    """DTMF caller ID, sent before the first ring: the digits of `dtmf_callerid_digits` as tones."""
    digits = dtmf_callerid_digits(number, absence=absence, terminator=terminator)
    return generate_dtmf(digits, sample_rate, on_ms=on_ms, off_ms=off_ms, level_dbm0=level_dbm0)


def parse_dtmf_callerid(digits: str, start_s: float = 0.0) -> CallerId | None:
    """Fields of a DTMF CLIP digit string; None when it does not start like one."""
    if not digits or digits[0] not in "ABD":
        return None
    terminated = digits[-1] in "#C"
    body = digits[:-1] if terminated else digits
    common = {"standard": "dtmf", "fmt": "dtmf", "message_type": ord(digits[0]),
              "message": digits.encode("ascii"), "start_s": start_s}
    if body[0] == DTMF_NUMBER_START:
        # 'C' variant: a redirecting number may follow after 'D'; the caller's number ends there.
        number = body[1:].split("D")[0] if digits[-1] == "C" else body[1:]
        return CallerId(number=number, checksum_ok=terminated and number.isdigit(),
                        **common)  # type: ignore[arg-type]
    known = {**{v: k for k, v in DTMF_HASH_ABSENCE.items()}, DTMF_HASH_OUT_OF_AREA: Absence.UNAVAILABLE,
             **{v: k for k, v in DTMF_C_ABSENCE.items()}}
    reason = known.get(body)
    return CallerId(number_absence=reason, checksum_ok=terminated and reason is not None,
                    **common)  # type: ignore[arg-type]


def decode_dtmf_callerid(samples: npt.ArrayLike, sample_rate: int = 8000) -> CallerId | None:
    """Find a DTMF caller ID in `samples` (digits detected by `dsp.dtmf.detect_dtmf`)."""
    presses = detect_dtmf(samples, sample_rate)
    digits = "".join(d for d, _, _ in presses).upper()
    first = next((i for i, d in enumerate(digits) if d in "ABD"), None)
    if first is None:
        return None
    return parse_dtmf_callerid(digits[first:], presses[first][1])
