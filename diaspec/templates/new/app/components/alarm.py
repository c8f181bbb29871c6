"""Alarm: your code (generated once by diaspec, then yours to edit)."""
from __future__ import annotations

from typing import Any

from ..framework import AbstractAlarm
from ..framework.types import *  # noqa: F401,F403


class Alarm(AbstractAlarm):
    def __init__(self) -> None:
        self.level = Level.LOW

    def on_heat(self, value: Any, discover: Any) -> None:
        # when provided Heat do Blink on Led
        if value is not self.level:  # tell the LED about changes only
            self.level = value
            discover.led.set_pattern("alarm" if value is Level.HIGH else "calm", 5 if value is Level.HIGH else 0)
