"""The work cell on its scenario: one nut picked and placed, then the stalled belt halted."""
import importlib
from pathlib import Path


def test_one_pick_and_place_then_the_stall_halts_the_belt():
    framework = importlib.import_module(__package__ + '.framework')
    app = framework.build(__package__, clock=framework.VirtualClock())
    app.play(framework.load_scenario(Path(__file__).with_name("scenario.toml"), app))
    assert app.failures == []
    assert app.device("arm").order_names() == ["move_to", "move_to", "home"]
    belt = app.device("belt")
    assert [(o.method, o.controller, o.time_ms) for o in belt.orders] == [
        ("halt", "Picker", 1000.0), ("run", "Placer", 3000.0), ("halt", "Safety", 4500.0),
    ]
