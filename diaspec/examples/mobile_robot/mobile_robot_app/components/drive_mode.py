"""DriveMode: cruise, avoid an obstacle closer than SAFE_DISTANCE, or stop on a collision."""
from __future__ import annotations

from collections.abc import Mapping

from ..framework import AbstractDriveMode
from ..framework.components import DiscoverDriveModeOnObstacleDistance, DiscoverDriveModeOnCollision
from ..framework.types import *  # noqa: F401,F403

SAFE_DISTANCE = 0.5  # meters


class DriveMode(AbstractDriveMode):
    def __init__(self) -> None:
        self.mode = Mode.CRUISE
        self.near: dict[SonarPosition, float] = {}

    def _change(self, mode: Mode) -> Mode | None:
        if mode is self.mode:
            return None  # publish changes only: controllers react to transitions
        self.mode = mode
        return mode

    def on_obstacle_distance(self, value: Mapping[SonarPosition, Meters], discover: DiscoverDriveModeOnObstacleDistance):
        # when provided ObstacleDistance get Collision maybe publish
        self.near.update(value)
        if discover.collision():
            return self._change(Mode.STOPPED)
        blocked = any(d < SAFE_DISTANCE for d in self.near.values())
        return self._change(Mode.AVOID if blocked else Mode.CRUISE)

    def on_collision(self, value: bool, discover: DiscoverDriveModeOnCollision):
        # when provided Collision maybe publish
        if value:
            return self._change(Mode.STOPPED)
        return self._change(Mode.CRUISE)
