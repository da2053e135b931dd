"""Call history in a real SQLite file: round trip, filters, and refusal of files it must not touch."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from firmware.media.rtcp import CallStats
from firmware.store.history import CallHistory, CallRecord, HistoryError

STATS = CallStats(packets_sent=1500, packets_received=1490, packets_lost=10, loss_pct=0.67,
                  jitter_mean_ms=4.2, jitter_max_ms=11.0, rtt_ms=23.5, mos=4.31)


def record(port: int = 0, caller: str = "101", callee: str = "5551234", start: float = 1000.0,
           stats: CallStats | None = STATS) -> CallRecord:
    return CallRecord(port, "out", caller, callee, start, start + 5.0, start + 65.0, "hangup", stats)


def test_round_trip_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    history = CallHistory(path)
    rid = history.add(record())
    history.add(CallRecord(1, "in", "5559999", "102", 2000.0, None, 2030.0, "no answer"))
    history.close()
    again = CallHistory(path)
    calls = again.recent()
    assert [c.start for c in calls] == [2000.0, 1000.0]  # newest first
    assert calls[1] == dataclasses.replace(record(), id=rid)
    assert calls[1].stats == STATS and calls[1].duration == 60.0
    assert calls[0].stats is None and calls[0].duration == 0.0
    again.close()


def test_filters_by_port_and_search(tmp_path: Path) -> None:
    history = CallHistory(tmp_path / "h.db")
    for k in range(5):
        history.add(record(port=k % 2, callee=f"55500{k}", start=1000.0 + k))
    assert [c.callee for c in history.recent(port=1)] == ["555003", "555001"]
    assert [c.callee for c in history.recent(search="5550")] == [f"55500{k}" for k in (4, 3, 2, 1, 0)]
    assert [c.callee for c in history.recent(search="003")] == ["555003"]
    assert len(history.recent(limit=2)) == 2
    assert history.recent(search="'; DROP TABLE calls; --") == []  # parameters, never SQL text
    assert len(history.recent()) == 5


def test_not_a_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    path.write_bytes(b"this is not sqlite, and it must stay as it is" * 100)
    before = path.read_bytes()
    with pytest.raises(HistoryError, match="not a call history database"):
        CallHistory(path)
    assert path.read_bytes() == before


def test_someone_elses_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE contacts (name TEXT)")
    db.commit()
    db.close()
    with pytest.raises(HistoryError, match="schema version 0"):
        CallHistory(path)
    db = sqlite3.connect(path)
    assert db.execute("SELECT name FROM sqlite_master").fetchall() == [("contacts",)]
    db.close()


def test_in_memory_history_for_tests_and_the_simulator() -> None:
    history = CallHistory(":memory:")
    history.add(record())
    assert len(history.recent()) == 1
