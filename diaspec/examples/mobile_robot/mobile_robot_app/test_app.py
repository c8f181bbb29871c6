"""The mobile robot on its scenario: it turns away from the wall at 0.44 m and stops on the bump."""
import importlib
from pathlib import Path


def test_the_robot_avoids_the_wall_and_stops_on_the_bump():
    framework = importlib.import_module(__package__ + '.framework')
    app = framework.build(__package__, clock=framework.VirtualClock())
    app.play(framework.load_scenario(Path(__file__).with_name("scenario.toml"), app))
    assert app.failures == []
    base = app.device("base")
    assert [(o.method, o.time_ms) for o in base.orders] == [("set_velocity", 1900.0), ("stop", 3000.0)]
    # the rear sonar's 2.5 m is beyond its 2 m range: it never turns the robot
    assert app.device("rear_led").order_names() == ["set_pattern"]
