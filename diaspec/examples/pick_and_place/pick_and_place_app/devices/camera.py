"""Camera driver: your code for real hardware (simulation uses SimCamera)."""
from __future__ import annotations

import logging

from ..framework import AbstractCamera

log = logging.getLogger(__name__)


class Camera(AbstractCamera):
    pass
