"""RobotPart driver: your code for real hardware (simulation uses SimRobotPart)."""
from __future__ import annotations

import logging

from ..framework import AbstractRobotPart

log = logging.getLogger(__name__)


class RobotPart(AbstractRobotPart):
    pass
