"""The warehouse robot on its scenario: it follows the line, stops for the pallet, beeps once for
pack B, and stops and beeps three times once its wheels have slipped for 3 s."""
import importlib
from pathlib import Path


def test_the_shift_in_the_aisle():
    framework = importlib.import_module(__package__ + '.framework')
    app = framework.build(__package__, clock=framework.VirtualClock())
    app.play(framework.load_scenario(Path(__file__).with_name("scenario.toml"), app))
    assert app.failures == []
    base, buzzer = app.device("base"), app.device("buzzer")
    stops = [o for o in base.orders if o.method == "set_velocity" and o.args[0].linear == 0.0]
    assert stops and 3500.0 <= stops[0].time_ms <= 4000.0  # the pallet, seen by the front sonar
    assert [(o.args, o.controller) for o in buzzer.orders][:1] == [((1,), "PowerWatch")]
    stuck = [o for o in base.orders if o.method == "stop"]
    assert len(stuck) == 1 and stuck[0].controller == "LineFollower" and 9000.0 <= stuck[0].time_ms <= 9500.0
    assert ((3,), "LineFollower") in [(o.args, o.controller) for o in buzzer.orders]
    assert [(o.args, o.time_ms) for o in app.device("beacon").orders] == [((True,), stuck[0].time_ms)]
