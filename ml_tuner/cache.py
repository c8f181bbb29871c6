"""Persistent cache of measurements keyed by (module digest, pass list, target, LLVM version)."""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from fleetforge.paths import CACHE_DIR
from ml_tuner.measure import Sizes

DEFAULT_CACHE = CACHE_DIR / "ml_tuner" / "measurements.sqlite"


@dataclass(frozen=True)
class CachedMeasurement:
    """A stored outcome; `sizes` is None for a compilation that failed."""

    sizes: Sizes | None
    seconds: float


class MeasureCache:
    """SQLite-backed; only the parent process writes, so the process pool needs no locking."""

    def __init__(self, path: Path = DEFAULT_CACHE) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, timeout=30)
        # WAL: `tune` runs can read (and briefly write) while a long evaluation writes.
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.OperationalError:
            pass  # another process holds the database in the old mode; plain locking works
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS m (key TEXT PRIMARY KEY, ir INTEGER, text INTEGER,"
            " obj INTEGER, ok INTEGER, seconds REAL)"
        )
        self._pending = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> CachedMeasurement | None:
        row = self._db.execute(
            "SELECT ir, text, obj, ok, seconds FROM m WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        ir, text, obj, ok, seconds = row
        return CachedMeasurement(Sizes(ir, text, obj) if ok else None, seconds)

    def put(self, key: str, sizes: Sizes | None, seconds: float) -> None:
        values = (sizes.ir_instructions, sizes.text_bytes, sizes.object_bytes, 1) if sizes else (
            0, 0, 0, 0)
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO m VALUES (?, ?, ?, ?, ?, ?)", (key, *values, seconds)
            )
        except sqlite3.OperationalError:
            return  # busy for too long: a cache is an optimisation, the result still counts
        self._pending += 1
        # Short transactions so concurrent users of the cache are not locked out.
        if self._pending >= 20:
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
