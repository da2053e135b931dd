"""DTMF receiver: CPU per port per 20 ms frame, talk-off and usable SNR, against spandsp 0.0.6.

spandsp's C receiver (Debian libspandsp2, through ctypes: bench/spandsp.py) is the baseline on the same
audio: one dtmf_rx() call per port and frame, as a Python media loop would drive it. Our DtmfDetector
takes all ports in one call. Three loads: "speech" (recorded speech on every port: a call in progress),
"speech+dialling" (the same with a 7-digit number dialled on every port within each 10 s, staggered:
more than half the frames then carry a digit on some port) and "keying" (every port dialling without
pause: the worst case, where no window is cheap to reject).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from bench.common import FRAME, PORT_COUNTS, Row, median_seconds
from bench.spandsp import SpandspDtmf, spandsp_digits
from dsp.dtmf import DtmfDetector, detect_dtmf, generate_dtmf
from tests.dsp import dtmf_corpus

SR = 8000
SWEEP_DB = (20.0, 15.0, 12.0, 10.0, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0)
SEEDS = (1, 2, 3)
USABLE_ERROR_RATE = 0.01
"""Usable SNR: the lowest SNR of the sweep with at most 1 % digit errors (3 x 160 digits)."""
TALKOFF_MUSIC_TRACKS = 12


def _load(kind: str, ports: int, speech: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    """[ports, 10 s] of audio, each port offset differently so their digits do not line up."""
    n = 10 * SR
    out = np.zeros((ports, n), dtype=np.int16)
    for p in range(ports):
        if kind == "keying":
            x = generate_dtmf("1234567890*#", on_ms=60, off_ms=60)
            out[p] = np.resize(np.roll(x, 137 * p), n)
        else:
            x = np.resize(np.roll(speech, 4001 * p), n)
            if kind == "speech+dialling":
                dial = generate_dtmf("5551234", on_ms=80, off_ms=80, level_dbm0=-12.0)
                x[SR * (p % 5):SR * (p % 5) + dial.size] = dial
            out[p] = x
    return out


class _Feeder:
    """Cycles through [ports, n] audio one 20 ms frame per call, into ours or into spandsp."""

    def __init__(self, audio: npt.NDArray[np.int16]) -> None:
        self.audio = audio
        self.pos = 0
        self.ours = DtmfDetector(audio.shape[0])
        self.theirs = [SpandspDtmf() for _ in range(audio.shape[0])]

    def _next(self) -> npt.NDArray[np.int16]:
        frame = self.audio[:, self.pos:self.pos + FRAME]
        self.pos = (self.pos + FRAME) % self.audio.shape[1]
        return frame

    def step_ours(self) -> None:
        self.ours.process(self._next())

    def step_theirs(self) -> None:
        frame = self._next()
        for rx, row in zip(self.theirs, frame, strict=True):
            rx.feed(row)


def _cpu_rows(speech: npt.NDArray[np.int16]) -> list[Row]:
    rows = []
    for kind in ("speech", "speech+dialling", "keying"):
        for ports in PORT_COUNTS:
            feed = _Feeder(_load(kind, ports, speech))
            ours = 1e6 * median_seconds(feed.step_ours, repeat=9) / ports
            base = 1e6 * median_seconds(feed.step_theirs, repeat=9) / ports
            case = f"DtmfDetector, {kind}, {ports} ports, per port per 20 ms frame"
            rows.append(Row("dtmf", case, ours, "us",
                            baseline_name="spandsp dtmf_rx per port", baseline=base,
                            goal="<= spandsp at 8 ports" if ports == 8 else "",
                            met=ours <= base if ports == 8 else None))
    return rows


Trials = dict[float, list[tuple[str, npt.NDArray[np.int16]]]]


def _usable_snr(decode: Callable[[npt.NDArray[np.int16]], str], trials: Trials) -> float:
    usable = max(SWEEP_DB)
    for snr in sorted(trials, reverse=True):
        errs = sum(dtmf_corpus.digit_errors(sent, decode(audio)) for sent, audio in trials[snr])
        if errs > USABLE_ERROR_RATE * sum(len(s) for s, _ in trials[snr]):
            break
        usable = snr
    return usable


def _ours(audio: npt.NDArray[np.int16]) -> str:
    return "".join(d for d, _, _ in detect_dtmf(audio))


def run() -> list[Row]:
    speech = np.concatenate([x for _, x in dtmf_corpus.speech()])
    rows = _cpu_rows(speech)
    gen = 1e6 * median_seconds(functools.partial(generate_dtmf, "5551234567", on_ms=100, off_ms=100))
    rows.append(Row("dtmf", "generate_dtmf, 10 digits (2 s of audio)", gen, "us"))

    trials = {snr: [dtmf_corpus.noise_trial(snr, seed) for seed in SEEDS] for snr in SWEEP_DB}
    ours_snr = _usable_snr(_ours, trials)
    base_snr = _usable_snr(spandsp_digits, trials)
    rows.append(Row("dtmf", "usable SNR, white noise, <= 1 % digit errors", ours_snr, "dB",
                    baseline_name="spandsp", baseline=base_snr, goal="< spandsp", met=ours_snr < base_snr))

    for name, clips in (("speech", dtmf_corpus.speech()),
                        ("music", dtmf_corpus.music(TALKOFF_MUSIC_TRACKS))):
        hours = dtmf_corpus.hours(clips)
        ours = sum(len(detect_dtmf(x)) for _, x in clips) / hours
        base = sum(len(spandsp_digits(x)) for _, x in clips) / hours
        rows.append(Row("dtmf", f"talk-off, {name} ({hours * 60:.0f} min), false digits per hour", ours, "/h",
                        baseline_name="spandsp", baseline=base, goal="<= spandsp", met=ours <= base))
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
