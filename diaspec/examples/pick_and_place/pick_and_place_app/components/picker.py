"""Picker: stop the belt, reach for the target and close the gripper on it."""
from __future__ import annotations

from typing import Any

from ..framework import AbstractPicker
from ..framework.components import DiscoverPickerOnTarget
from ..framework.types import *  # noqa: F401,F403

APPROACH_SPEED = 0.5
GRIP_FORCE = 12.0  # newtons


class Picker(AbstractPicker):
    def on_target(self, value: Detection, discover: DiscoverPickerOnTarget) -> None:
        # when provided Target do Move on Arm, Grip on Gripper, ConveyorControl on Conveyor
        discover.conveyor.halt()
        discover.gripper.open()
        discover.arm.move_to(value.at, APPROACH_SPEED)
        discover.gripper.close(GRIP_FORCE)
