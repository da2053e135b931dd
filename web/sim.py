"""Simulator control: outside tools (tests, the page's virtual handset) act as the person at a phone.

`sim_routes(gateway)` returns the routes of DESIGN.md's contract, for the sim backend only (409 on
real hardware, where there is no virtual phone to move):

    POST /api/v1/sim/ports/{n}/hook        {"offhook": true|false}
    POST /api/v1/sim/ports/{n}/flash       (a break in the middle of the configured flash window)
    POST /api/v1/sim/ports/{n}/dial        {"digits": "102", "method": "dtmf"|"pulse"}
    PUT  /api/v1/sim/ports/{n}/mouthpiece  a WAV body (any rate, mono or not), played once
    GET  /api/v1/sim/ports/{n}/earpiece?seconds=S   WAV of the last S seconds the phone heard
    GET  /api/v1/sim/ports/{n}             {"offhook", "ringing", "rings", "callerid", "mwi_lamp"}

Actions are scheduled on the board's clock (`board.now()`), after whatever the same phone is still
doing: digits dialled while a pulse train or earlier keys are still going follow them, as a person's
would, instead of garbling them.
"""

from __future__ import annotations

import io
from typing import Any

from aiohttp import web

from dsp.callerid import CallerId
from dsp.dtmf import DIGITS
from dsp.wav import WavError, read_wav, write_wav
from firmware.app import Gateway
from hal.board import RATE, Int16Array
from hal.sim import EARPIECE_SECONDS, SimBoard, VirtualPhone
from web.jsonapi import check_fields, fail, port_index, read_body, read_json

MAX_DIGITS = 32
MAX_WAV_BYTES = 16 * 1024 * 1024
"""A mouthpiece WAV up to 16 MiB (over a minute of 48 kHz stereo 16-bit)."""
MAX_SPEECH_S = 60.0
PULSE_PPS = 10.0
"""Rotary dial speed (10 pulses per second, 60 % break: the North American and European norm)."""


def sim_board(gateway: Gateway) -> SimBoard:
    """The simulator board, or 409: real hardware has no virtual phones to drive."""
    board = gateway.board
    if not isinstance(board, SimBoard):
        fail(409, f"simulator control needs the sim backend; this gateway drives real hardware "
                  f"({type(board).__name__}), whose phones are used by hand")
    return board


def phone_status(phone: VirtualPhone) -> dict[str, Any]:
    """What a person sees and hears at the phone: hook, bell, caller-ID display, message lamp."""
    return {"offhook": phone.offhook, "ringing": phone.ringing, "rings": phone.rings,
            "callerid": callerid_json(phone.callerid), "mwi_lamp": phone.mwi_lamp}


def callerid_json(cid: CallerId | None) -> dict[str, Any] | None:
    if cid is None:
        return None
    when = None if cid.when is None else \
        f"{cid.when.month:02d}-{cid.when.day:02d} {cid.when.hour:02d}:{cid.when.minute:02d}"
    return {"number": cid.number, "name": cid.name, "time": when}


class SimControl:
    """Per-phone scheduling state for the routes (when each phone's keys and voice are free again)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._keys_free: dict[int, float] = {}
        """Board time at which a phone's last dialled digit ends."""
        self._voice_free: dict[int, float] = {}
        """Board time at which the last mouthpiece WAV a phone was given ends."""

    def phone(self, request: web.Request) -> tuple[SimBoard, VirtualPhone]:
        board = sim_board(self.gateway)
        return board, board.phones[port_index(request, self.gateway)]

    @staticmethod
    def hook_free(board: SimBoard, phone: VirtualPhone) -> tuple[bool, float]:
        """Where the hook will be and when the phone can take the next hook action."""
        level, last = phone.hook_after_pending
        return level, max(board.now(), last or 0.0)

    def hook(self, board: SimBoard, phone: VirtualPhone, offhook: bool) -> float:
        """Put the hook where asked after any pending hook action; the seconds until it moves."""
        level, at = self.hook_free(board, phone)
        if level == offhook:
            return max(0.0, at - board.now())
        if offhook:
            phone.lift(at)
        else:
            phone.hang_up(at)
            self._keys_free.pop(phone.port, None)
            self._voice_free.pop(phone.port, None)
        return at - board.now()

    def dial(self, board: SimBoard, phone: VirtualPhone, digits: str, method: str) -> float:
        """Dial after anything still going; returns the seconds until the last digit ends."""
        level, hook_at = self.hook_free(board, phone)
        if not level:
            fail(409, f"phone {phone.port + 1} is on hook: lift it before dialling")
        at = max(hook_at, self._keys_free.get(phone.port, 0.0))
        if method == "pulse":
            end = phone.dial_pulse(digits, at, pps=PULSE_PPS)
        else:
            end = phone.dial_dtmf(digits, at)
        self._keys_free[phone.port] = end
        return end - board.now()


    def speak(self, board: SimBoard, phone: VirtualPhone, audio: Int16Array) -> float:
        """Play `audio` once after the phone's previous WAV; returns the seconds until it starts."""
        level, at = self.hook_free(board, phone)
        if not level:
            fail(409, f"phone {phone.port + 1} is on hook: its mouthpiece is not connected to the line")
        at = max(at, self._voice_free.get(phone.port, 0.0))
        phone.speak(audio, at)
        self._voice_free[phone.port] = at + len(audio) / RATE
        return at - board.now()


def sim_routes(gateway: Gateway) -> web.RouteTableDef:
    """The simulator routes for `gateway` (mount with `app.add_routes(sim_routes(gateway))`)."""
    control = SimControl(gateway)
    routes = web.RouteTableDef()

    @routes.get("/api/v1/sim/ports/{n}")
    async def status(request: web.Request) -> web.Response:
        _, phone = control.phone(request)
        return web.json_response(phone_status(phone))

    @routes.post("/api/v1/sim/ports/{n}/hook")
    async def hook(request: web.Request) -> web.Response:
        board, phone = control.phone(request)
        body = await read_json(request)
        check_fields(body, {"offhook"})
        offhook = body.get("offhook")
        if not isinstance(offhook, bool):
            fail(400, 'offhook must be true (lift the handset) or false (hang up)')
        in_s = control.hook(board, phone, offhook)
        return web.json_response({"offhook": offhook, "in_s": round(in_s, 3)})

    @routes.post("/api/v1/sim/ports/{n}/flash")
    async def flash(request: web.Request) -> web.Response:
        board, phone = control.phone(request)
        check_fields(await read_json(request, required=False), set())
        level, at = control.hook_free(board, phone)
        if not level:
            fail(409, f"phone {phone.port + 1} is on hook: a flash needs the handset lifted")
        hw = gateway.config.hardware  # the middle of the configured flash window, whatever it is
        ms = (hw.flash_min_ms + hw.flash_max_ms) / 2
        phone.flash(at, ms)
        return web.json_response({"flash_ms": ms, "in_s": round(at - board.now(), 3)})

    @routes.post("/api/v1/sim/ports/{n}/dial")
    async def dial(request: web.Request) -> web.Response:
        board, phone = control.phone(request)
        body = await read_json(request)
        check_fields(body, {"digits", "method"})
        digits, method = body.get("digits"), body.get("method", "dtmf")
        if method not in ("dtmf", "pulse"):
            fail(400, 'method must be "dtmf" (keypad tones) or "pulse" (rotary dial)')
        keys = "0123456789" if method == "pulse" else DIGITS
        if not isinstance(digits, str) or not 1 <= len(digits) <= MAX_DIGITS \
                or any(d not in keys for d in digits.upper()):
            what = "0-9 (a rotary dial has nothing else)" if method == "pulse" else "0-9 * # A-D"
            fail(400, f"digits must be 1..{MAX_DIGITS} of {what}")
        seconds = control.dial(board, phone, digits.upper(), method)
        return web.json_response({"digits": digits.upper(), "method": method, "seconds": round(seconds, 3)})

    @routes.put("/api/v1/sim/ports/{n}/mouthpiece")
    async def mouthpiece(request: web.Request) -> web.Response:
        board, phone = control.phone(request)
        raw = await read_body(request, MAX_WAV_BYTES, "WAV body")
        try:
            audio = read_wav(io.BytesIO(raw), RATE)
        except WavError as exc:
            fail(400, f"the body must be a WAV file: {exc}")
        seconds = len(audio) / RATE
        if seconds > MAX_SPEECH_S:
            fail(400, f"WAV is {seconds:.1f} s long; at most {MAX_SPEECH_S:g} s")
        starts_in = control.speak(board, phone, audio)
        return web.json_response({"seconds": round(seconds, 3), "starts_in": round(starts_in, 3)})

    @routes.get("/api/v1/sim/ports/{n}/earpiece")
    async def earpiece(request: web.Request) -> web.Response:
        _, phone = control.phone(request)
        try:
            seconds = float(request.query.get("seconds", "5"))
        except ValueError:
            seconds = -1.0
        if not 0 < seconds <= EARPIECE_SECONDS:
            fail(400, f"seconds must be a number above 0 and at most {EARPIECE_SECONDS}")
        out = io.BytesIO()
        write_wav(out, phone.earpiece(seconds), RATE)
        return web.Response(body=out.getvalue(), content_type="audio/wav")
    return routes
