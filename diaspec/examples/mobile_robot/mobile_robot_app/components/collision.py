"""Collision: the bumper state, pushed on change and pulled by DriveMode."""
from __future__ import annotations

from typing import Any

from ..framework import AbstractCollision, Event
from ..framework.components import DiscoverCollisionOnPressedFromBumper, DiscoverCollisionWhenRequired


class Collision(AbstractCollision):
    def __init__(self) -> None:
        self.pressed = False

    def on_pressed_from_bumper(self, event: Event, discover: DiscoverCollisionOnPressedFromBumper):
        # when provided pressed from Bumper maybe publish
        changed = event.value != self.pressed
        self.pressed = event.value
        return self.pressed if changed else None

    def when_required(self, discover: DiscoverCollisionWhenRequired) -> bool:
        # when required
        return self.pressed
