"""What a line reports and what it can be told: hook events and feed states."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Feed(StrEnum):
    """SLIC line-feed state."""

    ACTIVE = "active"
    """Loop current flows; talk, dial tone and on-hook transmission (caller ID) possible."""
    IDLE = "idle"
    """Standby: reduced feed that still detects an off-hook (the SLIC's low-power state)."""
    OPEN = "open"
    """Loop-current disconnect: no feed at all, so answering machines and modems release."""


class HookKind(StrEnum):
    OFF_HOOK = "off_hook"
    ON_HOOK = "on_hook"
    FLASH = "flash"
    DIGIT = "digit"
    """A rotary (pulse) digit; DTMF digits come from the audio, not from the hook switch."""


@dataclass(frozen=True, slots=True)
class HookEvent:
    """A hook-switch event of one port.

    `time` is when it happened on the line (the edge that began it, from the backend's clock in
    seconds), not when it was recognised: an on-hook is known only once the break outlasts a flash,
    but it happened when the break began.
    """

    port: int
    kind: HookKind
    time: float
    digit: str | None = None
    duration: float | None = None
    """Length of the break in seconds, for a FLASH."""
