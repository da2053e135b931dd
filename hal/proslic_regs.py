"""Si3210 / Si3215 (ProSLIC) register map: the numbers the `proslic` backend writes.

Sources: the Si3210 datasheet (Silicon Labs, "Si3210/Si3211/Si3212 ProSLIC", register and indirect
register tables, "Initialization" section) and the register values and order of the Linux DAHDI
`wctdm` driver, which has driven Si3210/Si3215 modules on TDM400P cards since 2004. Values marked
UNSURE could not be checked against the datasheet text while writing this; they follow wctdm.
"""

from __future__ import annotations

import math
from typing import Final

# -- SPI framing (datasheet "Serial Peripheral Interface") -------------------------------------------
SPI_MODE: Final = 3
"""CPOL=1, CPHA=1: SCLK idles high, data is sampled on the rising edge (wctdm idles SCLK high)."""
SPI_MAX_HZ: Final = 1_000_000
"""Conservative clock; the datasheet allows more (UNSURE of the exact maximum, >= 4 MHz)."""
SPI_READ: Final = 0x80
"""Control byte bit 7: 1 = read, 0 = write; bits 6..0 are the direct register address (wctdm)."""
ADDR_MASK: Final = 0x7F
DIRECT_LAST: Final = 108

# -- direct registers ----------------------------------------------------------------------------
ID: Final = 0
"""Bits 5..4 part number (0 = Si3210), bits 3..0 revision; 0 or 0xF means no chip answered."""
PCM_MODE: Final = 1
"""Bit 5 PCME (PCM enable), bits 4..3 PCMF (00 A-law, 01 mu-law, 11 16-bit linear); bit 7 reads 1 on
an Si3215 (wctdm's Si3215 detection)."""
PCM_TXS_LO: Final = 2
PCM_TXS_HI: Final = 3
PCM_RXS_LO: Final = 4
PCM_RXS_HI: Final = 5
"""Transmit / receive start count: the PCLK cycle after FSYNC where this chip's slot begins (10 bits)."""
LOOPBACK: Final = 8
HYBRID: Final = 11
POWERDOWN1: Final = 14
"""Bit 4 powers the DC-DC converter down (reset value 0x10); 0 runs it."""
IRQ_STATUS1: Final = 18
IRQ_STATUS2: Final = 19
IRQ_STATUS3: Final = 20
IRQ_ENABLE1: Final = 21
IRQ_ENABLE2: Final = 22
IRQ_ENABLE3: Final = 23
IDA_LO: Final = 28
IDA_HI: Final = 29
IAA: Final = 30
"""Writing the indirect address starts the indirect access (after IDA_LO/IDA_HI for a write)."""
IAS: Final = 31
"""Indirect access status: non-zero while an indirect access is pending."""
LINEFEED: Final = 64
"""Bits 2..0 LF (the state asked for), bits 6..4 LFS (the state the line is actually in)."""
BAT_FEED: Final = 66
AUTO_MANUAL: Final = 67
LOOP_STATUS: Final = 68
LOOP_I_LIMIT: Final = 71
VBAT_SENSE: Final = 82
"""Battery voltage, 376 mV per LSB."""
DCDC_PERIOD: Final = 92
DCDC_WIDTH: Final = 93
"""Bit 7 DCCAL starts the DC-DC converter calibration and reads 1 until it is done (UNSURE: wctdm
writes 0x19 without waiting; Sangoma's fork writes 0x99 and polls bit 7 as done here)."""
CAL1: Final = 96
CAL2: Final = 97
CHIP_TUNE: Final = 108
"""wctdm's "Revision C optimization" value 0xEB."""

# -- bits and values -----------------------------------------------------------------------------
PART_MASK: Final = 0x30
REV_MASK: Final = 0x0F
SI3215_FLAG: Final = 0x80
RESET_LOOPBACK: Final = 0x02
RESET_HYBRID: Final = 0x33
PCM_ENABLE_LINEAR16: Final = 0x20 | 0x18
POWERDOWN_DCDC: Final = 0x10
DCDC_CAL: Final = 0x80
DCDC_WIDTH_VALUE: Final = 0x19
DCDC_PERIOD_VALUE: Final = 0xFF
"""DC-DC PWM period (wctdm: "1/64 kHz", also the reset value)."""
AUTO_MANUAL_VALUE: Final = 0x07
"""wctdm: automatic battery switching off, so Q7 cannot be turned on and burnt (UNSURE of bit names)."""
BAT_FEED_VALUE: Final = 0x01
"""wctdm: "Turn off Q7"."""
CAL2_ALL: Final = 0x1F
"""CALM1, CALM2, CALDAC, CALADC, CALCM: monitor ADC, DAC/ADC offset and common-mode balance."""
CAL1_START_ALL: Final = 0x5F
"""CAL (start) with CALR, CALT, CALD, CALC, CALIL: RING/TIP gain mismatch (Q5/Q6), differential and
common-mode DAC, loop current limit; no speed-up (bit 5 clear). Reads 0 once every calibration is done."""
LOOP_LCR: Final = 0x01
"""Loop status: loop closure detected (off-hook, valid outside ringing)."""
LOOP_RTP: Final = 0x02
"""Loop status: ring trip detected (off-hook while ringing)."""
IRQ2_RING_TRIP: Final = 0x01
IRQ2_LOOP_CLOSURE: Final = 0x02
IRQ2_POWER_ALARMS: Final = 0xFC
"""Bits 7..2: power alarm of transistor Q6..Q1 (wctdm's PAQ_DEBUG masks bits 1..0 off, UNSURE of
which bit is which transistor)."""
VBAT_MIN: Final = 0xC0
"""wctdm waits for VBAT_SENSE >= 0xC0 (about -72 V) after powering up the DC-DC converter."""
VBAT_LSB_V: Final = 0.376
IR_FILTER_CLEAR: Final = 0x8000
"""Written to the filter indirect registers 35..39 during power-up and calibration, then restored."""

LF_OPEN: Final = 0
LF_FORWARD_ACTIVE: Final = 1
LF_FORWARD_OHT: Final = 2
LF_TIP_OPEN: Final = 3
LF_RINGING: Final = 4
LF_REVERSE_ACTIVE: Final = 5
LF_REVERSE_OHT: Final = 6
LF_RING_OPEN: Final = 7
LF_NAMES: Final = ("open", "forward active", "forward on-hook transmission", "TIP open", "ringing",
                   "reverse active", "reverse on-hook transmission", "RING open")

# -- indirect registers (Si3210 address, Si3215 address or None, name, initial value) -----------
IR_RING_V_OFF: Final = 19
IR_RING_OSC: Final = 20
IR_RING_X: Final = 21
IR_RING_Y: Final = 22
IR_FILTERS: Final = (35, 36, 37, 38, 39)

INDIRECT_INIT: Final[tuple[tuple[int, int | None, str, int], ...]] = (
    (0, None, "DTMF_ROW_0_PEAK", 0x55C2),
    (1, None, "DTMF_ROW_1_PEAK", 0x51E6),
    (2, None, "DTMF_ROW2_PEAK", 0x4B85),
    (3, None, "DTMF_ROW3_PEAK", 0x4937),
    (4, None, "DTMF_COL1_PEAK", 0x3333),
    (5, None, "DTMF_FWD_TWIST", 0x0202),
    (6, None, "DTMF_RVS_TWIST", 0x0202),
    (7, None, "DTMF_ROW_RATIO_TRES", 0x0198),
    (8, None, "DTMF_COL_RATIO_TRES", 0x0198),
    (9, None, "DTMF_ROW_2ND_ARM", 0x0611),
    (10, None, "DTMF_COL_2ND_ARM", 0x0202),
    (11, None, "DTMF_PWR_MIN_TRES", 0x00E5),
    (12, None, "DTMF_OT_LIM_TRES", 0x0A1C),
    (13, 0, "OSC1_COEF", 0x7B30),
    (14, 1, "OSC1X", 0x0063),
    (15, 2, "OSC1Y", 0x0000),
    (16, 3, "OSC2_COEF", 0x7870),
    (17, 4, "OSC2X", 0x007D),
    (18, 5, "OSC2Y", 0x0000),
    (19, 6, "RING_V_OFF", 0x0000),
    (20, 7, "RING_OSC", 0x7EF0),
    (21, 8, "RING_X", 0x0160),
    (22, 9, "RING_Y", 0x0000),
    (23, None, "PULSE_ENVEL", 0x2000),
    (24, None, "PULSE_X", 0x2000),
    (25, None, "PULSE_Y", 0x0000),
    (26, 13, "RECV_DIGITAL_GAIN", 0x4000),
    (27, 14, "XMIT_DIGITAL_GAIN", 0x4000),
    (28, 15, "LOOP_CLOSE_TRES", 0x1000),
    (29, 16, "RING_TRIP_TRES", 0x3600),
    (30, 17, "COMMON_MIN_TRES", 0x1000),
    (31, 18, "COMMON_MAX_TRES", 0x0200),
    (32, 19, "PWR_ALARM_Q1Q2", 0x07C0),
    (33, 20, "PWR_ALARM_Q3Q4", 0x2600),
    (34, 21, "PWR_ALARM_Q5Q6", 0x1B80),
    (35, 22, "LOOP_CLOSURE_FILTER", 0x8000),
    (36, 23, "RING_TRIP_FILTER", 0x0320),
    (37, 24, "TERM_LP_POLE_Q1Q2", 0x008C),
    (38, 25, "TERM_LP_POLE_Q3Q4", 0x0100),
    (39, 26, "TERM_LP_POLE_Q5Q6", 0x0010),
    (40, 27, "CM_BIAS_RINGING", 0x0C00),
    (41, 64, "DCDC_MIN_V", 0x0C00),
    (42, None, "DCDC_XTRA", 0x1000),
    (43, 66, "LOOP_CLOSE_TRES_LOW", 0x1000),
)
"""The datasheet's recommended initial values as wctdm writes them (RECV/XMIT gain 0 dB = 0x4000);
the Si3215 has no DTMF decoder or pulse metering and keeps the rest at other addresses (wctdm's
`altaddr`). Loop-closure and ring-trip thresholds are IR 28/29, the Q1..Q6 power alarm thresholds
IR 32..34 and their thermal low-pass poles IR 37..39."""


def indirect_address(si3210_addr: int, si3215: bool) -> int | None:
    """The address of Si3210 indirect register `si3210_addr` on this part (None: the part lacks it)."""
    if not si3215:
        return si3210_addr
    for addr, alt, _, _ in INDIRECT_INIT:
        if addr == si3210_addr:
            return alt
    raise KeyError(f"indirect register {si3210_addr} is not in the ProSLIC init table")


RING_OSC_RATE_HZ: Final = 1000.0
"""The ring oscillator runs at 1 kHz: RING_OSC = 2^15 cos(2 pi f / 1000), truncated; this reproduces
wctdm's 25 Hz value 0x7E6C (TBR21 mode) exactly."""
RING_FULL_SCALE_V: Final = 96.0
"""RING_X full scale (UNSURE: with it the formula below gives wctdm's 0x0160 for about 64 Vpk at 20 Hz)."""


def ring_coefficients(freq_hz: float, vpk: float) -> tuple[int, int]:
    """(RING_OSC, RING_X) for a sine ring signal of `freq_hz` and `vpk` volts peak.

    Datasheet "Ringing generation": the oscillator is y[n] = coeff * y[n-1] - y[n-2] started from
    RING_X, whose amplitude is x * sqrt((1 + c) / (1 - c)); so x = A/4 * sqrt((1 - c) / (1 + c)) with
    A in units of the full scale (the 1/4 is the datasheet's scaling, UNSURE).
    """
    if not 10.0 <= freq_hz <= 100.0:
        raise ValueError(f"ring frequency {freq_hz} Hz is outside 10..100 Hz")
    c = math.cos(2 * math.pi * freq_hz / RING_OSC_RATE_HZ)
    coeff = math.floor(32768 * c)
    amplitude = round(32768 / 4 * math.sqrt((1 - c) / (1 + c)) * vpk / RING_FULL_SCALE_V)
    return coeff, amplitude


def loop_current_code(milliamps: int) -> int:
    """LOOP_I_LIMIT value for a loop current limit of 20..41 mA in 3 mA steps (wctdm)."""
    if not 20 <= milliamps <= 41:
        raise ValueError(f"loop current {milliamps} mA is outside 20..41 mA")
    return (milliamps - 20) // 3
