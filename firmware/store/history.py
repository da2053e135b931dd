"""Call history in SQLite: who called whom on which port, when, how it ended, and how the media was.

One row per call, written when the call ends (with the RTCP statistics and MOS of `CallStats`), so a
crash loses at most the calls in progress. The schema carries its version in `PRAGMA user_version`;
a file that is not a Hookflash history, or is newer than this code, is refused with a clear error
instead of being modified.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from firmware.media.rtcp import CallStats

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE calls (
    id INTEGER PRIMARY KEY,
    port INTEGER NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out', 'local')),
    caller TEXT NOT NULL,
    callee TEXT NOT NULL,
    start REAL NOT NULL,
    answer REAL,
    "end" REAL NOT NULL,
    cause TEXT NOT NULL,
    packets_sent INTEGER, packets_received INTEGER, packets_lost INTEGER, loss_pct REAL,
    jitter_mean_ms REAL, jitter_max_ms REAL, rtt_ms REAL, mos REAL
);
CREATE INDEX calls_start ON calls (start DESC);
"""
_STATS = ("packets_sent", "packets_received", "packets_lost", "loss_pct", "jitter_mean_ms",
          "jitter_max_ms", "rtt_ms", "mos")
_COLUMNS = ("id", "port", "direction", "caller", "callee", "start", "answer", "end", "cause", *_STATS)

Direction = Literal["in", "out", "local"]


class HistoryError(RuntimeError):
    """The history file cannot be used (not a database, someone else's, or from a newer version)."""


@dataclass(frozen=True)
class CallRecord:
    """One finished call; times are Unix seconds, `answer` None when it was never answered."""

    port: int
    direction: Direction
    caller: str
    callee: str
    start: float
    answer: float | None
    end: float
    cause: str
    stats: CallStats | None = None
    id: int | None = None

    @property
    def duration(self) -> float:
        """Talk time in seconds (0 for an unanswered call)."""
        return 0.0 if self.answer is None else max(0.0, self.end - self.answer)


class CallHistory:
    """The call history database (`":memory:"` for a throwaway one)."""

    def __init__(self, path: str | Path) -> None:
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None)
            self._db.row_factory = sqlite3.Row
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            raise HistoryError(f"{path}: not a call history database ({exc})") from exc
        if version == 0 and not tables:
            self._db.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        elif version != SCHEMA_VERSION or "calls" not in tables:
            self._db.close()
            raise HistoryError(f"{path}: history schema version {version} is not {SCHEMA_VERSION} "
                               "(written by another program or a newer Hookflash)")
        if str(path) != ":memory:":
            self._db.execute("PRAGMA journal_mode = WAL")  # readers (the web page) never block a write

    def add(self, record: CallRecord) -> int:
        """Store a finished call; returns its id."""
        stats = record.stats
        values = [record.port, record.direction, record.caller, record.callee, record.start,
                  record.answer, record.end, record.cause]
        values += [getattr(stats, name) for name in _STATS] if stats else [None] * len(_STATS)
        names = ", ".join(f'"{c}"' for c in _COLUMNS[1:])
        marks = ", ".join("?" * len(values))
        cursor = self._db.execute(f"INSERT INTO calls ({names}) VALUES ({marks})", values)
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def recent(self, limit: int = 100, port: int | None = None,
               search: str | None = None) -> list[CallRecord]:
        """Newest calls first, optionally of one port and/or whose caller or callee contains `search`."""
        where: list[str] = []
        args: list[object] = []
        if port is not None:
            where.append("port = ?")
            args.append(port)
        if search:
            where.append("(instr(caller, ?) > 0 OR instr(callee, ?) > 0)")
            args += [search, search]
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        names = ", ".join(f'"{c}"' for c in _COLUMNS)
        rows = self._db.execute(f"SELECT {names} FROM calls {clause} ORDER BY start DESC, id DESC LIMIT ?",
                                [*args, limit]).fetchall()
        return [_record(row) for row in rows]

    def close(self) -> None:
        self._db.close()


def _record(row: sqlite3.Row) -> CallRecord:
    stats = CallStats(*(row[name] for name in _STATS)) if row["packets_sent"] is not None else None
    return CallRecord(port=row["port"], direction=row["direction"], caller=row["caller"],
                      callee=row["callee"], start=row["start"], answer=row["answer"], end=row["end"],
                      cause=row["cause"], stats=stats, id=row["id"])
