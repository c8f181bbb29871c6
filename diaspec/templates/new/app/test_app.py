"""The starter app on its scenario: the lab gets hot, and after 2 s of heat the LED blinks the alarm."""
import importlib
from pathlib import Path


def test_the_alarm_blinks_once_the_lab_has_been_hot_for_two_seconds():
    framework = importlib.import_module(__package__ + '.framework')
    app = framework.build(__package__, clock=framework.VirtualClock())
    app.play(framework.load_scenario(Path(__file__).with_name("scenario.toml"), app))
    assert app.failures == []
    alarms = [o for o in app.device("lab_led").orders if o.controller == "Alarm"]
    assert [(o.args, o.time_ms) for o in alarms] == [(("alarm", 5), 6000.0)]
