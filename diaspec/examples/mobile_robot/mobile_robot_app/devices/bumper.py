"""Bumper driver: your code for real hardware (simulation uses SimBumper)."""
from __future__ import annotations

import logging

from ..framework import AbstractBumper

log = logging.getLogger(__name__)


class Bumper(AbstractBumper):
    pass
