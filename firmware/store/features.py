"""What each port's user programmed from the phone (forwarding, do not disturb, speed dial), in
SQLite in `data_dir`, so a reboot keeps it as a telephone exchange would.

One row per port holding the `FeatureState` as JSON; written whole on every change (a star code is
rare, the row is small). Like the call history, a file that is not ours, or is newer, is refused.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from firmware.line.features import FeatureState

SCHEMA_VERSION = 1
_SCHEMA = "CREATE TABLE port_features (port INTEGER PRIMARY KEY, state TEXT NOT NULL);"


class FeatureStoreError(RuntimeError):
    """The feature file cannot be used (not a database, someone else's, or from a newer version)."""


class FeatureStore:
    """The programmed feature state of every port (`":memory:"` for a throwaway one)."""

    def __init__(self, path: str | Path) -> None:
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None)
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            raise FeatureStoreError(f"{path}: not a feature database ({exc})") from exc
        if version == 0 and not tables:
            self._db.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        elif version != SCHEMA_VERSION or "port_features" not in tables:
            self._db.close()
            raise FeatureStoreError(f"{path}: not a Hookflash feature database of version {SCHEMA_VERSION} "
                                    f"(user_version {version}, tables {sorted(tables)})")

    def load(self, port: int) -> FeatureState | None:
        """The state port `port` was last programmed to, or None if it never was."""
        row = self._db.execute("SELECT state FROM port_features WHERE port = ?", (port,)).fetchone()
        if row is None:
            return None
        try:
            data = json.loads(row[0])
        except json.JSONDecodeError:
            return None
        return FeatureState.from_json(data) if isinstance(data, dict) else None

    def save(self, port: int, state: FeatureState) -> None:
        self._db.execute("INSERT OR REPLACE INTO port_features (port, state) VALUES (?, ?)",
                         (port, json.dumps(state.to_json(), sort_keys=True)))

    def close(self) -> None:
        self._db.close()
