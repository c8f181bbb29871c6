"""ObstacleDistance: keep sonar readings that lie within the sonar's range."""
from __future__ import annotations

from typing import Any

from ..framework import AbstractObstacleDistance, Event
from ..framework.types import *  # noqa: F401,F403


class ObstacleDistance(AbstractObstacleDistance):
    def on_distance_from_sonar(self, event: Event, discover: Any):
        # when provided distance from Sonar maybe publish
        if event.value >= event.sender.max_range:
            return None  # nothing in range: an echo from infinity says nothing
        return {event.index["position"]: event.value}
