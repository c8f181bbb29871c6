"""ArmPose: where the arm of the station is now (pulled by Target)."""
from __future__ import annotations

from typing import Any

from ..framework import AbstractArmPose
from ..framework.components import DiscoverArmPoseWhenRequired
from ..framework.types import *  # noqa: F401,F403

HOME = Point(x=0.0, y=0.0, z=0.5)


class ArmPose(AbstractArmPose):
    def when_required(self, discover: DiscoverArmPoseWhenRequired) -> Point:
        # when required get position from Arm
        readings = discover.position_from_arm()
        return readings[0].value if readings else HOME
