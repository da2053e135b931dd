"""A stdin console that drives the simulator's phones, so `make run` can be tried before the web UI exists.

One command per line; ports count from 1 as on the case:

    1 lift            pick up phone 1 (answers it when ringing)
    1 hangup          put it back
    1 flash           a 300 ms hook flash
    1 dial 102        press keys (DTMF tones into the mouthpiece)
    1 pulse 102       dial them on the rotary dial (hook-switch pulses, 10 pps)
    1 tone 1000       speak a 1 s sine of that frequency into the mouthpiece
    1 listen          the strongest frequency and level in the earpiece's last second
    status            every port: extension, call state, hook, ringing, caller ID shown
    help              this list
    quit              stop the gateway (as Ctrl-C does)

It needs the `sim` backend (there is no phone to drive on real hardware) and reads stdin without
blocking the loop (`loop.add_reader`).
"""

from __future__ import annotations

import asyncio
import os
import sys

import numpy as np

from dsp.level import power_dbm0
from firmware.app import Gateway
from hal.sim import SimBoard

HELP = __doc__.split("\n\n")[1] if __doc__ else ""
RATE = 8000


class Console:
    """Reads commands from stdin and answers on stdout."""

    def __init__(self, gateway: Gateway, stop: asyncio.Event) -> None:
        if not isinstance(gateway.board, SimBoard):
            raise ValueError("the console drives simulated phones: it needs hardware.backend = \"sim\"")
        self.gateway, self.board, self.stop = gateway, gateway.board, stop
        self._pending = b""

    def attach(self) -> None:
        """Start reading stdin on the running loop (until it closes, or `detach`)."""
        try:
            asyncio.get_running_loop().add_reader(sys.stdin.fileno(), self._readable)
        except (OSError, ValueError) as exc:  # e.g. stdin is a regular file or /dev/null: not pollable
            print(f"console: cannot read stdin ({exc}); running without it", flush=True)
            return
        print("console: type 'help' for the commands, e.g. '1 lift', '1 dial 102', 'status'", flush=True)

    def detach(self) -> None:
        asyncio.get_running_loop().remove_reader(sys.stdin.fileno())

    def _readable(self) -> None:
        """Read what is there (not `readline`: its buffer would hide lines from the loop's reader)."""
        data = os.read(sys.stdin.fileno(), 4096)
        if not data:  # end of input: stop reading, keep the gateway running
            asyncio.get_running_loop().remove_reader(sys.stdin.fileno())
        *lines, self._pending = (self._pending + data).split(b"\n")
        for line in lines:
            reply = self.command(line.decode(errors="replace"))
            if reply:
                print(reply, flush=True)

    def command(self, line: str) -> str:
        """Execute one command line; returns what to print."""
        words = line.split()
        if not words:
            return ""
        if words[0] == "help":
            return HELP
        if words[0] == "status":
            return self.status()
        if words[0] == "quit":
            self.stop.set()
            return "stopping"
        if not words[0].isdigit() or len(words) < 2:
            return f"? {line.strip()!r}: try 'help'"
        index = int(words[0]) - 1
        if not 0 <= index < len(self.board.phones):
            return f"? no port {words[0]} (1..{len(self.board.phones)})"
        phone, now, verb, arg = self.board.phones[index], self.board.now() + 0.02, words[1], words[2:]
        try:
            if verb == "lift":
                phone.lift(now)
            elif verb == "hangup":
                phone.hang_up(now)
            elif verb == "flash":
                phone.flash(now)
            elif verb == "dial" and arg:
                phone.dial_dtmf(arg[0], now)
            elif verb == "pulse" and arg:
                phone.dial_pulse(arg[0], now)
            elif verb == "tone" and arg:
                t = np.arange(RATE) / RATE
                phone.speak((8000 * np.sin(2 * np.pi * float(arg[0]) * t)).astype(np.int16), now)
            elif verb == "listen":
                return self.listen(index)
            else:
                return f"? {line.strip()!r}: try 'help'"
        except ValueError as exc:
            return f"? {exc}"
        return "ok"

    def listen(self, index: int) -> str:
        audio = self.board.phones[index].earpiece(1.0).astype(np.float64)
        level = power_dbm0(audio.astype(np.int16)) if len(audio) else -99.0
        if len(audio) == 0 or level < -50:
            return f"port {index + 1}: silence"
        spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
        peak = float(np.fft.rfftfreq(len(audio), 1 / RATE)[int(np.argmax(spectrum))])
        return f"port {index + 1}: {level:.0f} dBm0, strongest {peak:.0f} Hz"

    def status(self) -> str:
        rows = []
        for port, extension, state in self.gateway.status():
            phone = self.board.phones[port]
            cid = phone.callerid
            shown = f", caller ID {cid.number or ''} {cid.name or ''}".rstrip() if cid else ""
            rows.append(f"port {port + 1} ({extension}): {state}, {'off' if phone.offhook else 'on'}-hook"
                        f"{', ringing' if phone.ringing else ''}{shown}")
        return "\n".join(rows)
