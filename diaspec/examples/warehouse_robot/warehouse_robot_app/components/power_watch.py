"""PowerWatch: one beep when a pack drops below LOW."""
from __future__ import annotations

from collections.abc import Mapping

from ..framework import AbstractPowerWatch
from ..framework.components import DiscoverPowerWatchOnBatteryReport

LOW = 0.2  # of full charge


class PowerWatch(AbstractPowerWatch):
    def __init__(self) -> None:
        self.warned: set[str] = set()

    def on_battery_report(self, value: Mapping[str, float], discover: DiscoverPowerWatchOnBatteryReport) -> None:
        # when provided BatteryReport do Sound on Buzzer
        for pack, charge in value.items():
            if charge < LOW and pack not in self.warned:
                self.warned.add(pack)
                discover.buzzer.beep(1)
