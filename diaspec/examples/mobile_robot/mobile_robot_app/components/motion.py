"""Motion: turn the drive base's orders and the LED pattern into what the mode asks."""
from __future__ import annotations

from typing import Any

from ..framework import AbstractMotion
from ..framework.components import DiscoverMotionOnDriveMode
from ..framework.types import *  # noqa: F401,F403

CRUISE = Velocity(linear=0.4, angular=0.0)
TURN = Velocity(linear=0.0, angular=0.8)


class Motion(AbstractMotion):
    def on_drive_mode(self, value: Mode, discover: DiscoverMotionOnDriveMode) -> None:
        # when provided DriveMode do Drive on DriveBase, Blink on Led
        if value is Mode.STOPPED:
            discover.drive_base.stop()
            discover.led.set_pattern("stopped", 0)
        elif value is Mode.AVOID:
            discover.drive_base.set_velocity(TURN)
            discover.led.where(mount="top").set_pattern("avoid", 3)
        else:
            discover.drive_base.set_velocity(CRUISE)
