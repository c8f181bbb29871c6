"""Target: the nearest wanted part the camera sees within the arm's reach."""
from __future__ import annotations

import math
from typing import Any

from ..framework import AbstractTarget, Event
from ..framework.components import DiscoverTargetOnDetectionsFromCamera
from ..framework.types import *  # noqa: F401,F403

WANTED = {"bolt", "nut"}
REACH = 0.8  # meters from the arm


class Target(AbstractTarget):
    def on_detections_from_camera(self, event: Event, discover: DiscoverTargetOnDetectionsFromCamera):
        # when provided detections from Camera get ArmPose maybe publish
        arm = discover.arm_pose()
        candidates = [
            d for d in event.value
            if d.label in WANTED and math.dist((d.at.x, d.at.y, d.at.z), (arm.x, arm.y, arm.z)) <= REACH
        ]
        if not candidates:
            return None
        return min(candidates, key=lambda d: math.dist((d.at.x, d.at.y), (arm.x, arm.y)))
