"""Safety: halt a stalled conveyor, restart it when it moves again."""
from __future__ import annotations

from typing import Any

from ..framework import AbstractSafety
from ..framework.components import DiscoverSafetyOnStalled


class Safety(AbstractSafety):
    def on_stalled(self, value: bool, discover: DiscoverSafetyOnStalled) -> None:
        # when provided Stalled do ConveyorControl on Conveyor
        if value:
            discover.conveyor.halt()
