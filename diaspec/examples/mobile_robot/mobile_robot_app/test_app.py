"""A first test of the mobile_robot app on simulated devices (yours to extend)."""
import importlib


def test_app_runs_on_simulated_devices():
    framework = importlib.import_module(__package__ + '.framework')
    app = framework.build(__package__, clock=framework.VirtualClock())
    app.advance(1000)
    assert app.failures == []
