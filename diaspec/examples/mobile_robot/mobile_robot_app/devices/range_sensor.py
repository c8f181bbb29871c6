"""RangeSensor driver: your code for real hardware (simulation uses SimRangeSensor)."""
from __future__ import annotations

import logging

from ..framework import AbstractRangeSensor

log = logging.getLogger(__name__)


class RangeSensor(AbstractRangeSensor):
    pass
