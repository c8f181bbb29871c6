"""Conveyor driver: your code for real hardware (simulation uses SimConveyor)."""
from __future__ import annotations

import logging

from ..framework import AbstractConveyor

log = logging.getLogger(__name__)


class Conveyor(AbstractConveyor):
    def run(self, speed) -> None:
        log.warning('Conveyor.run: drive the hardware here')

    def halt(self) -> None:
        log.warning('Conveyor.halt: drive the hardware here')
