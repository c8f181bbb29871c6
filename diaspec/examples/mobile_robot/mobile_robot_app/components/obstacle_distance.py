"""ObstacleDistance: keep sonar readings that lie within the sonar's range."""
from __future__ import annotations

from ..framework import AbstractObstacleDistance, AbstractSonar, Event
from ..framework.components import DiscoverObstacleDistanceOnDistanceFromSonar
from ..framework.types import *  # noqa: F401,F403


class ObstacleDistance(AbstractObstacleDistance):
    def on_distance_from_sonar(self, event: Event, discover: DiscoverObstacleDistanceOnDistanceFromSonar):
        # when provided distance from Sonar maybe publish
        sonar = event.sender
        assert isinstance(sonar, AbstractSonar)  # the design routes Sonar readings only
        if event.value >= sonar.max_range:
            return None  # nothing in range: an echo from infinity says nothing
        return {event.index["position"]: event.value}
