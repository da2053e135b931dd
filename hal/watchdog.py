"""A sans-IO watchdog: the media loop kicks it, the ring thread asks whether it has expired.

If the process stalls (a blocked event loop, a swapping SD card), nothing would advance the ring
cadence or see a ring trip, and RM could stay high on a SLIC whose ring mode must not run
continuously (Ag1171 datasheet §5.3: RM high only while ringing). The ring thread therefore drops
RM by itself once the loop has not shown life for `timeout` seconds.
"""

from __future__ import annotations


class Watchdog:
    """Expires when `kick` has not been called for more than `timeout` seconds."""

    def __init__(self, timeout: float, now: float) -> None:
        if timeout <= 0:
            raise ValueError(f"watchdog timeout must be positive, got {timeout}")
        self.timeout = timeout
        self._last = now

    def kick(self, now: float) -> None:
        self._last = max(self._last, now)

    def expired(self, now: float) -> bool:
        return now - self._last > self.timeout

    @property
    def deadline(self) -> float:
        """The time after which it expires unless kicked again."""
        return self._last + self.timeout
