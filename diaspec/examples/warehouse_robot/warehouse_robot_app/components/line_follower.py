"""LineFollower: drive as Steering says; when stuck, stop, beep and light the beacon."""
from __future__ import annotations

from ..framework import AbstractLineFollower
from ..framework.components import DiscoverLineFollowerOnSteering, DiscoverLineFollowerOnStuck
from ..framework.types import Velocity


class LineFollower(AbstractLineFollower):
    def on_steering(self, value: Velocity, discover: DiscoverLineFollowerOnSteering) -> None:
        # when provided Steering do Drive on DriveBase
        discover.drive_base.set_velocity(value)

    def on_stuck(self, value: bool, discover: DiscoverLineFollowerOnStuck) -> None:
        # when provided Stuck do Drive on DriveBase, Sound on Buzzer, Signal on Beacon
        if value:
            discover.drive_base.stop()
            discover.buzzer.beep(3)
        discover.beacon.light(value)
