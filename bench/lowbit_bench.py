"""Low-bit models against fp32 torch and TFLite int8 (LiteRT, XNNPACK) on this machine, in one run:
    .venv/bin/python bench/lowbit_bench.py [--json] [--quick]
Prints one table (sizes, digits accuracy, latency per inference) with the machine and its load;
--json prints one JSON object instead (keys include size_ratio_fp32_over_2bit and
speedup_2bit_over_litert_int8). The same as `fleetforge model.bench`."""
from __future__ import annotations

import argparse

from fleetforge.errors import exit_on_user_error
from lowbit.bench import BenchOptions, dumps, run_bench, table


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="short training and fewer rounds (a smoke run)")
    args = parser.parse_args()
    options = BenchOptions(epochs=3, qat_epochs=2, rounds=3) if args.quick else BenchOptions()
    result = run_bench(options)
    print(dumps(result) if args.json else table(result))


if __name__ == "__main__":
    main()
