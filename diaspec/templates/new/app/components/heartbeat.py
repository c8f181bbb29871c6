"""Heartbeat: your code (generated once by diaspec, then yours to edit)."""
from __future__ import annotations

from typing import Any

from ..framework import AbstractHeartbeat


class Heartbeat(AbstractHeartbeat):
    def __init__(self) -> None:
        self.beats = 0

    def on_every_500ms(self, discover: Any) -> int:
        # when periodic <500 ms> always publish
        self.beats += 1
        return self.beats
