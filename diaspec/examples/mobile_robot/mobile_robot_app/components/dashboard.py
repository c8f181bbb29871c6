"""Dashboard: the status LED blinks faster as obstacles get closer."""
from __future__ import annotations

from typing import Any

from ..framework import AbstractDashboard
from ..framework.components import DiscoverDashboardOnClearance


class Dashboard(AbstractDashboard):
    def __init__(self) -> None:
        self.last_times: int | None = None

    def on_clearance(self, value: float, discover: DiscoverDashboardOnClearance) -> None:
        # when provided Clearance do Blink on Led
        times = 0 if value >= 2.0 else 1 if value >= 1.0 else 2
        if times != self.last_times:  # tell the LED only about changes
            self.last_times = times
            discover.led.where(mount="top").set_pattern("clearance", times)
