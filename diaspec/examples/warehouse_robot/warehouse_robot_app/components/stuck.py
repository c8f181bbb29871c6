"""Stuck: the way is clear but the base has not moved for STUCK_MS (measured on event times)."""
from __future__ import annotations

from ..framework import AbstractStuck, Event, Sustained
from ..framework.components import DiscoverStuckOnSpeedFromDriveBase

STUCK_MS = 3000
STILL = 0.02  # m/s


class Stuck(AbstractStuck):
    def __init__(self) -> None:
        self.still = Sustained(STUCK_MS)
        self.stuck = False

    def on_speed_from_drive_base(self, event: Event, discover: DiscoverStuckOnSpeedFromDriveBase) -> bool | None:
        # when provided speed from DriveBase get Blocked maybe publish
        stuck = self.still.update(abs(event.value) < STILL and not discover.blocked(), event.time_ms)
        if stuck == self.stuck:
            return None  # publish changes only
        self.stuck = stuck
        return stuck
