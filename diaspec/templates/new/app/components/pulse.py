"""Pulse: your code (generated once by diaspec, then yours to edit)."""
from __future__ import annotations

from typing import Any

from ..framework import AbstractPulse


class Pulse(AbstractPulse):
    def on_heartbeat(self, value: int, discover: Any) -> None:
        # when provided Heartbeat do Blink on Led
        discover.led.where(room="lab").set_pattern("heartbeat", 1)
