"""Heat: your code (generated once by diaspec, then yours to edit)."""
from __future__ import annotations

from typing import Any

from ..framework import AbstractHeat, Event, Sustained  # noqa: F401
from ..framework.types import *  # noqa: F401,F403

HOT = 28.0  # degrees Celsius
FOR_MS = 2000  # how long it must stay hot before the alarm: a duration, not a count of ticks


class Heat(AbstractHeat):
    def __init__(self) -> None:
        self.hot = Sustained(FOR_MS)

    def on_periodic_temperature_from_thermometer(self, readings: dict[Any, tuple[Event, ...]], discover: Any):
        # when periodic temperature from Thermometer <1 s> grouped by room maybe publish
        hottest = max((e.value for events in readings.values() for e in events), default=None)
        if hottest is None:
            return None
        return Level.HIGH if self.hot.update(hottest >= HOT, discover.now()) else Level.LOW
