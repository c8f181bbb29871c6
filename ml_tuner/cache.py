"""Persistent caches: measurements keyed by job (subject, candidate, flags, LLVM version), and
tuning decisions keyed by unit (IR, target, LLVM version, flags, model) so an unchanged unit is
never tuned twice."""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from fleetforge.paths import CACHE_DIR
from ml_tuner.build import Sizes

DEFAULT_CACHE = CACHE_DIR / "ml_tuner" / "measurements-v2.sqlite"


@dataclass(frozen=True)
class CachedMeasurement:
    """A stored outcome; `sizes` is None for a build that failed."""

    sizes: Sizes | None
    seconds: float


class MeasureCache:
    """SQLite-backed; WAL so a `tune` can read while a long evaluation writes."""

    def __init__(self, path: Path = DEFAULT_CACHE) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Threads of one process share it (measure_many writes from the calling thread only).
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.OperationalError:
            pass  # another process holds the database in the old mode; plain locking works
        self._db.execute("CREATE TABLE IF NOT EXISTS m (key TEXT PRIMARY KEY, text INTEGER,"
                         " flash INTEGER, ok INTEGER, seconds REAL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS decision (key TEXT PRIMARY KEY, value TEXT)")
        self._pending = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> CachedMeasurement | None:
        row = self._db.execute("SELECT text, flash, ok, seconds FROM m WHERE key = ?",
                               (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        text, flash, ok, seconds = row
        return CachedMeasurement(Sizes(text, flash) if ok else None, seconds)

    def put(self, key: str, sizes: Sizes | None, seconds: float) -> None:
        values = (sizes.text, sizes.flash, 1) if sizes else (0, 0, 0)
        self._write("INSERT OR REPLACE INTO m VALUES (?, ?, ?, ?, ?)", (key, *values, seconds))

    def get_decision(self, key: str) -> dict | None:
        row = self._db.execute("SELECT value FROM decision WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put_decision(self, key: str, value: dict) -> None:
        self._write("INSERT OR REPLACE INTO decision VALUES (?, ?)", (key, json.dumps(value)))
        self.flush()

    def _write(self, sql: str, values: tuple) -> None:
        try:
            self._db.execute(sql, values)
        except sqlite3.OperationalError:
            return  # busy for too long: a cache is an optimisation, the result still counts
        self._pending += 1
        if self._pending >= 20:  # short transactions keep other users of the cache going
            self.flush()

    def flush(self) -> None:
        try:
            self._db.commit()
        except sqlite3.OperationalError:
            self._db.rollback()
        self._pending = 0

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM m").fetchone()[0]

    def close(self) -> None:
        self.flush()
        self._db.close()

    def __enter__(self) -> "MeasureCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
