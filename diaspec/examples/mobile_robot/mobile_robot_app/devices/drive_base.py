"""DriveBase driver: your code for real hardware (simulation uses SimDriveBase)."""
from __future__ import annotations

import logging

from ..framework import AbstractDriveBase

log = logging.getLogger(__name__)


class DriveBase(AbstractDriveBase):
    def set_velocity(self, v) -> None:
        log.warning('DriveBase.set_velocity: drive the hardware here')

    def stop(self) -> None:
        log.warning('DriveBase.stop: drive the hardware here')
