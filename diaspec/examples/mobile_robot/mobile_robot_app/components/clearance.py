"""Clearance: the smallest distance the front-mounted sonars report."""
from __future__ import annotations

from typing import Any

from ..framework import AbstractClearance, Event
from ..framework.components import DiscoverClearanceOnPeriodicDistanceFromSonar

FAR = 10.0  # meters: what "nothing in sight" publishes


class Clearance(AbstractClearance):
    def on_periodic_distance_from_sonar(self, readings: dict[Any, tuple[Event, ...]], discover: DiscoverClearanceOnPeriodicDistanceFromSonar) -> float:
        # when periodic distance from Sonar <200 ms> grouped by mount always publish
        front = readings.get("front", ())
        return min((e.value for e in front), default=FAR)
