"""DiaSpec figures anyone can rerun: compile time of a 1,000-component design and runtime dispatch
throughput, each beside a baseline measured in the same run.

    python bench/diaspec_bench.py [--components 1000] [--events 200000] [--json]

Targets (issue 4): check + generate under 2 s for 1,000 components; at least 100,000 events/s.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from diaspec.cgen import CGenerator
from diaspec.compiler import check_spec
from diaspec.pygen import generate_python


def synthetic_design(components: int) -> str:
    """A third devices, a third contexts, a third controllers, chained so every check has work."""
    n = max(1, components // 3)
    lines = [
        "enumeration Zone { NORTH, SOUTH }",
        "structure Reading { value as Float; zone as Zone; }",
        "action Act { apply(level as Float); reset(); }",
        "device Base { attribute zone as Zone; }",
    ]
    for i in range(n):
        lines.append(f"device Dev{i} extends Base {{ source level{i} as Float indexed by slot as Integer; action Act; }}")
    for i in range(n):
        gets = f" get Ctx{i - 1}" if i else ""
        lines.append(
            f"// Context {i}.\ncontext Ctx{i} as Reading {{\n"
            f"    when provided level{i} from Dev{i}{gets} maybe publish;\n"
            f"    when periodic level{i} from Dev{i} <{100 + i} ms> grouped by zone maybe publish;\n"
            "    when required;\n}"
        )
    for i in range(components - 2 * n):
        lines.append(f"controller Ctl{i} {{ when provided Ctx{i % n} do Act on Dev{i % n}; }}")
    return "\n".join(lines) + "\n"


def best_of(runs: int, func) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return times


def bench_compile(components: int, runs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "synthetic.diaspec"
        spec.write_text(synthetic_design(components))
        baseline = best_of(runs, lambda: spec.read_text().encode().decode())  # reading the text only
        checked = check_spec(spec)
        if not checked.ok:
            raise SystemExit("synthetic design does not check:\n" + checked.diagnostics.render()[:2000])
        counts = (len(checked.design.devices), len(checked.design.contexts), len(checked.design.controllers))

        def check_and_generate_python() -> None:
            generate_python(check_spec(spec), Path(tmp) / "synthetic_app")

        def check_and_generate_c() -> None:
            CGenerator(check_spec(spec)).generate()

        check_only = best_of(runs, lambda: check_spec(spec))
        python = best_of(runs, check_and_generate_python)
        c = best_of(runs, check_and_generate_c)
    return {
        "components": sum(counts) - 1,  # the shared Base device is not counted
        "devices_contexts_controllers": counts,
        "spec_bytes": len(synthetic_design(components)),
        "read_baseline_s": min(baseline),
        "check_s": statistics.median(check_only),
        "check_generate_python_s": statistics.median(python),
        "check_generate_c_s": statistics.median(c),
    }


DISPATCH_SPEC = """\
action Act { apply(level as Float); }
device Sensor { attribute zone as String; source level as Float; }
device Motor { attribute zone as String; action Act; }
context Filtered as Float { when provided level from Sensor always publish; }
context Alarm as Float { when provided Filtered maybe publish; }
controller Drive { when provided Alarm do Act on Motor; }
"""

COMPONENTS = {
    "filtered": "class Filtered(AbstractFiltered):\n    def on_level_from_sensor(self, event, discover):\n        return event.value * 0.5\n",
    "alarm": "class Alarm(AbstractAlarm):\n    def on_filtered(self, value, discover):\n        return value if value > 1.0 else None\n",
    "drive": "class Drive(AbstractDrive):\n    def on_alarm(self, value, discover):\n        discover.motor.apply(value)\n",
}


def bench_dispatch(events: int, runs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "dispatch.diaspec"
        spec.write_text(DISPATCH_SPEC)
        package = Path(tmp) / "dispatch_app"
        generate_python(check_spec(spec), package)
        (package / "deployment.toml").write_text(
            '[[device]]\nid = "s"\ntype = "Sensor"\nzone = "a"\n\n[[device]]\nid = "m"\ntype = "Motor"\nzone = "a"\n'
        )
        for name, body in COMPONENTS.items():
            cls = body.split("(")[0].split()[-1]
            (package / "components" / f"{name}.py").write_text(f"from ..framework import Abstract{cls}\n\n{body}")
        sys.path.insert(0, tmp)
        fw = importlib.import_module("dispatch_app.framework")

        # every publish of 4.0 runs 3 callbacks (Filtered, Alarm, Drive) and 1 order
        callbacks_per_publish = 3
        publishes = max(1, events // callbacks_per_publish)

        def runtime_run() -> None:
            app = fw.build("dispatch_app", clock=fw.VirtualClock())
            sensor = app.device("s")
            motor = app.device("m")
            publish = sensor.publish_level
            for _ in range(publishes):
                publish(4.0)
            assert len(motor.orders) == publishes

        # baseline: the same three callbacks called directly, no queue, no discover, no checks
        orders: list = []

        def direct_run() -> None:
            orders.clear()
            for _ in range(publishes):
                filtered = 4.0 * 0.5
                alarm = filtered if filtered > 1.0 else None
                if alarm is not None:
                    orders.append(("apply", (alarm,)))

        runtime = best_of(runs, runtime_run)
        direct = best_of(runs, direct_run)
        sys.path.remove(tmp)
    delivered = publishes * callbacks_per_publish
    return {
        "publishes": publishes,
        "callbacks_delivered": delivered,
        "runtime_s": min(runtime),
        "events_per_s": delivered / min(runtime),
        "publishes_per_s": publishes / min(runtime),
        "direct_calls_s": min(direct),
        "overhead_vs_direct_calls": min(runtime) / min(direct),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, default=1000)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    compile_figures = bench_compile(args.components, args.runs)
    dispatch_figures = bench_dispatch(args.events, args.runs)
    machine = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
               "load_1min": os.getloadavg()[0]}
    if args.json:
        print(json.dumps({"compile": compile_figures, "dispatch": dispatch_figures, "machine": machine}, indent=2))
        return 0
    c, d = compile_figures, dispatch_figures
    print(f"machine: Python {machine['python']} on {machine['machine']}, {machine['cpus']} CPUs, load {machine['load_1min']:.1f}")
    print(f"design: {c['components']} components (devices, contexts, controllers = {c['devices_contexts_controllers']}), "
          f"{c['spec_bytes']} bytes")
    print(f"  check only             {c['check_s']:.3f} s")
    print(f"  check + generate Python {c['check_generate_python_s']:.3f} s  (target < 2 s: "
          f"{'met' if c['check_generate_python_s'] < 2 else 'MISSED'})")
    print(f"  check + generate C      {c['check_generate_c_s']:.3f} s")
    print(f"dispatch: {d['callbacks_delivered']} callbacks from {d['publishes']} publishes")
    print(f"  runtime                {d['events_per_s']:,.0f} events/s  (target >= 100,000: "
          f"{'met' if d['events_per_s'] >= 100_000 else 'MISSED'})")
    print(f"  direct calls baseline  {d['overhead_vs_direct_calls']:.1f}x faster than the runtime "
          f"(the price of the queue, discover objects and contract checks)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
