"""Gripper driver: your code for real hardware (simulation uses SimGripper)."""
from __future__ import annotations

import logging

from ..framework import AbstractGripper

log = logging.getLogger(__name__)


class Gripper(AbstractGripper):
    def open(self) -> None:
        log.warning('Gripper.open: drive the hardware here')

    def close(self, force) -> None:
        log.warning('Gripper.close: drive the hardware here')
