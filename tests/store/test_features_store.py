"""The programmed feature state in a real SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from firmware.line.features import FeatureState
from firmware.store.features import FeatureStore, FeatureStoreError


def test_state_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "features.db"
    store = FeatureStore(path)
    assert store.load(0) is None
    state = FeatureState(forward_always="2125551234", dnd=True, speed_dial={"2": "411"})
    store.save(0, state)
    store.save(0, FeatureState(forward_busy="200"))  # the latest wins
    store.save(1, state)
    store.close()
    again = FeatureStore(path)
    assert again.load(0) == FeatureState(forward_busy="200")
    assert again.load(1) == state
    again.close()


def test_someone_elses_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(FeatureStoreError, match="not a Hookflash feature database"):
        FeatureStore(path)
    text = tmp_path / "text.db"
    text.write_text("hello, this is no database at all" * 10)
    with pytest.raises(FeatureStoreError, match="not a feature database"):
        FeatureStore(text)
