"""Stalled: the conveyor is meant to run but reports no speed."""
from __future__ import annotations

from typing import Any

from ..framework import AbstractStalled, Event
from ..framework.components import DiscoverStalledOnPeriodicSpeedFromConveyor

MIN_SPEED = 0.01  # m/s


class Stalled(AbstractStalled):
    def __init__(self) -> None:
        self.reported = False

    def on_periodic_speed_from_conveyor(self, readings: tuple[Event, ...], discover: DiscoverStalledOnPeriodicSpeedFromConveyor):
        # when periodic speed from Conveyor <500 ms> maybe publish
        stalled = any(e.value < MIN_SPEED for e in readings)
        if stalled == self.reported:
            return None
        self.reported = stalled
        return stalled
