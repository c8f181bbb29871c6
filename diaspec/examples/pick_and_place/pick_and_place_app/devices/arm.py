"""Arm driver: your code for real hardware (simulation uses SimArm)."""
from __future__ import annotations

import logging

from ..framework import AbstractArm

log = logging.getLogger(__name__)


class Arm(AbstractArm):
    def move_to(self, target, speed) -> None:
        log.warning('Arm.move_to: drive the hardware here')

    def home(self) -> None:
        log.warning('Arm.home: drive the hardware here')
