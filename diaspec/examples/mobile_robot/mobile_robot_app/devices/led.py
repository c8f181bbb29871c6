"""Led driver: your code for real hardware (simulation uses SimLed)."""
from __future__ import annotations

import logging

from ..framework import AbstractLed

log = logging.getLogger(__name__)


class Led(AbstractLed):
    def set_pattern(self, pattern, times) -> None:
        log.warning('Led.set_pattern: drive the hardware here')
