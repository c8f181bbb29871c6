"""Placer: once a part is held, carry it to the bin, release it and restart the belt."""
from __future__ import annotations

from typing import Any

from ..framework import AbstractPlacer
from ..framework.components import DiscoverPlacerOnGrasp
from ..framework.types import *  # noqa: F401,F403

BIN = Point(x=0.0, y=-0.6, z=0.3)
CARRY_SPEED = 0.3
BELT_SPEED = 0.2


class Placer(AbstractPlacer):
    def on_grasp(self, value: GripState, discover: DiscoverPlacerOnGrasp) -> None:
        # when provided Grasp do Move on Arm, Grip on Gripper, ConveyorControl on Conveyor
        if value is GripState.CLOSED:
            discover.arm.move_to(BIN, CARRY_SPEED)
            discover.gripper.open()
        else:
            discover.arm.home()
            discover.conveyor.run(BELT_SPEED)
