"""Sonar driver: your code for real hardware (simulation uses SimSonar)."""
from __future__ import annotations

import logging

from ..framework import AbstractSonar

log = logging.getLogger(__name__)


class Sonar(AbstractSonar):
    pass
