"""The last log lines in memory, for the System page (a Pi's SD card should not hold a chatty log)."""

from __future__ import annotations

import logging
from collections import deque


class LogRing(logging.Handler):
    """Keeps the last `capacity` formatted records."""

    def __init__(self, capacity: int = 500) -> None:
        super().__init__()
        self.lines: deque[tuple[float, str, str]] = deque(maxlen=capacity)
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append((record.created, record.levelname, self.format(record)))
        except Exception:
            self.handleError(record)
