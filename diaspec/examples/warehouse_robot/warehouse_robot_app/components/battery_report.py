"""BatteryReport: the lowest cell reading of each pack."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..framework import AbstractBatteryReport, Event
from ..framework.components import DiscoverBatteryReportOnPeriodicChargeFromBattery


class BatteryReport(AbstractBatteryReport):
    def on_periodic_charge_from_battery(self, readings: dict[Any, tuple[Event, ...]],
                                        discover: DiscoverBatteryReportOnPeriodicChargeFromBattery) -> Mapping[str, float]:
        # when periodic charge from Battery <2 s> grouped by pack always publish
        return {pack: min(e.value for e in events) for pack, events in readings.items()}
