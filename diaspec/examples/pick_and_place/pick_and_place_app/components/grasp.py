"""Grasp: whether the gripper holds a part."""
from __future__ import annotations

from typing import Any

from ..framework import AbstractGrasp, Event
from ..framework.components import DiscoverGraspOnHoldingFromGripper
from ..framework.types import *  # noqa: F401,F403


class Grasp(AbstractGrasp):
    def on_holding_from_gripper(self, event: Event, discover: DiscoverGraspOnHoldingFromGripper) -> GripState:
        # when provided holding from Gripper always publish
        return GripState.CLOSED if event.value else GripState.OPEN
