"""Steering: a proportional line follower that stands still while the way is blocked."""
from __future__ import annotations

from ..framework import AbstractSteering, Event
from ..framework.components import DiscoverSteeringOnOffsetFromLineSensor
from ..framework.types import Velocity

CRUISE = 0.5  # m/s
GAIN = 2.0  # rad/s per meter of offset


class Steering(AbstractSteering):
    def on_offset_from_line_sensor(self, event: Event, discover: DiscoverSteeringOnOffsetFromLineSensor) -> Velocity:
        # when provided offset from LineSensor get Blocked always publish
        if discover.blocked():
            return Velocity(linear=0.0, angular=0.0)
        return Velocity(linear=CRUISE, angular=round(GAIN * event.value, 3))
