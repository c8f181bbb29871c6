"""Station driver: your code for real hardware (simulation uses SimStation)."""
from __future__ import annotations

import logging

from ..framework import AbstractStation

log = logging.getLogger(__name__)


class Station(AbstractStation):
    pass
