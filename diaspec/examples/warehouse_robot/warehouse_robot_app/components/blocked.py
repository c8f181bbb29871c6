"""Blocked: something is nearer than STOP_DISTANCE in front of the robot."""
from __future__ import annotations

from ..framework import AbstractBlocked, Event
from ..framework.components import DiscoverBlockedOnDistanceFromSonarRing, DiscoverBlockedWhenRequired
from ..framework.types import RingPosition

STOP_DISTANCE = 0.5  # meters
AHEAD = (RingPosition.FRONT, RingPosition.FRONT_LEFT, RingPosition.FRONT_RIGHT)


class Blocked(AbstractBlocked):
    def __init__(self) -> None:
        self.nearest: dict[RingPosition, float] = {}

    def on_distance_from_sonar_ring(self, event: Event, discover: DiscoverBlockedOnDistanceFromSonarRing) -> None:
        # when provided distance from SonarRing no publish
        self.nearest[event.index["position"]] = event.value

    def when_required(self, discover: DiscoverBlockedWhenRequired) -> bool:
        # when required
        return any(self.nearest.get(p, 10.0) < STOP_DISTANCE for p in AHEAD)
