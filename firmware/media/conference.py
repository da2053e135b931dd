"""Three-way calling mixed locally: a port's second media session (its conference leg).

In a conference each far end must hear the phone and the other far end, and the phone hears both
(the bridge of GR-577 three-way calling, done here instead of at the PBX). The pipeline keeps the
port's first session; this holds the second and does the cross mixing with numpy over the conference
ports: the first far end gets mouthpiece + second far end, the second gets mouthpiece + first far end,
the earpiece gets both. A far end's audio reaches the other one tick (20 ms) later, because the
uplink is encoded before this tick's downlink is decoded; no far end hears itself.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from dsp.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from dsp.synth import to_int16
from firmware.media.session import FRAME, Datagram, MediaSession

Int16Array = npt.NDArray[np.int16]
FloatArray = npt.NDArray[np.float64]


class ConferenceLegs:
    """Second sessions of `ports` ports; datagrams of port p's second session come out on channel
    `ports + p` (`Pipeline.session_of`)."""

    def __init__(self, ports: int) -> None:
        self.ports = ports
        self.sessions: list[MediaSession | None] = [None] * ports
        self._conf = np.zeros(0, dtype=np.int64)
        self._first = np.zeros((ports, FRAME))
        """What each first far end said last tick (decoded, concealed)."""
        self._second = np.zeros((ports, FRAME))

    @property
    def active(self) -> bool:
        return bool(self._conf.size)

    def set(self, port: int, session: MediaSession | None) -> None:
        self.sessions[port] = session
        self._first[port] = self._second[port] = 0.0
        self._conf = np.array([p for p, s in enumerate(self.sessions) if s is not None], dtype=np.int64)

    def uplink(self, up: Int16Array, now: float) -> tuple[Int16Array, list[tuple[int, Datagram]]]:
        """The first sessions' uplink with the second far ends mixed in, and the second sessions'
        datagrams (mouthpiece + first far end)."""
        conf = self._conf
        mouth = up[conf].astype(np.float64)
        mixed = up.copy()
        mixed[conf] = to_int16(mouth + self._second[conf])
        to_second = to_int16(mouth + self._first[conf])
        datagrams: list[tuple[int, Datagram]] = []
        for i, port in enumerate(conf.tolist()):
            session = self.sessions[port]
            assert session is not None
            encode = alaw_encode if session.codec == "PCMA" else ulaw_encode
            payload = encode(to_second[i]).tobytes()
            datagrams += ((self.ports + port, dg) for dg in session.next_uplink(payload, now))
        return mixed, datagrams

    def downlink(self, out: FloatArray, now: float) -> FloatArray:
        """Earpiece audio with the second far ends added to the first (`out`, decoded)."""
        conf = self._conf
        self._first[conf] = out[conf]
        heard = np.zeros((len(conf), FRAME))
        for i, port in enumerate(conf.tolist()):
            session = self.sessions[port]
            assert session is not None
            payload, _lost = session.next_downlink(now)
            if payload is not None:  # a lost frame is silence on the conference leg
                decode = alaw_decode if session.codec == "PCMA" else ulaw_decode
                heard[i] = decode(np.frombuffer(payload, dtype=np.uint8))
        self._second[conf] = heard
        mixed = out.copy()
        mixed[conf] += heard
        return mixed
