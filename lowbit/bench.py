"""The low-bit bench: one table, one machine, one run (bench/lowbit_bench.py, `fleetforge
model.bench`). Sizes (fp32 / TFLite int8 / 4-bit / 2-bit), digits accuracy, and latency per
inference of fp32 torch, TFLite int8 in LiteRT (XNNPACK) and the 2-bit runtime on the same
networks, all single-threaded, measured in interleaved rounds so load hits each alike."""
from __future__ import annotations

import copy
import io
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from lowbit import artifact, backends, reference
from lowbit.binding import Runtime
from lowbit.compiler import compile_model
from lowbit.config import QuantConfig
from lowbit.digits import accuracy, train
from lowbit.pipeline import BuildRequest, build_model, input_codes
from lowbit.qat import calibrate, prepare
from lowbit.tflite_export import export_int8, quantize_input


@dataclass(frozen=True)
class BenchOptions:
    epochs: int = 40         # fp32 digits training
    qat_epochs: int = 30
    rounds: int = 7          # interleaved latency rounds (median reported)
    architectures: tuple[str, ...] = ("digits", "resnet18", "yolo")


def machine() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "load_before": round(os.getloadavg()[0], 2)}


def fp32_size(model: torch.nn.Module) -> int:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def int_accuracy(runtime: Runtime, blob: bytes, images: torch.Tensor, labels: torch.Tensor) -> float:
    model = artifact.from_bytes(blob)
    scale = model.graph.nodes[-1].consts["output_scale"].astype(np.float64)
    codes = input_codes(model.meta, images)
    predictions = [int(np.argmax(runtime.run(c) * scale)) for c in codes]
    return float(np.mean(np.array(predictions) == labels.numpy()))


def tflite_accuracy(blob: bytes, images: torch.Tensor, labels: torch.Tensor) -> float:
    runner = backends.load(blob, xnnpack=True, threads=1)
    codes = quantize_input(blob, images.numpy())
    predictions = [int(np.argmax(runner.run(c[None]))) for c in codes]
    return float(np.mean(np.array(predictions) == labels.numpy()))


def _latencies(candidates: dict[str, Callable[[], object]], rounds: int,
               per_round: int) -> dict[str, dict]:
    """Wall-clock and thread CPU milliseconds per inference (median of the rounds). On a shared
    machine the CPU time is the one to compare: it leaves out the time other processes held the
    core, which wall time charges to whoever was running."""
    for run in candidates.values():
        run()  # warm-up
    wall: dict[str, list[float]] = {name: [] for name in candidates}
    cpu: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, run in candidates.items():
            start, start_cpu = time.perf_counter(), time.thread_time()
            for _ in range(per_round):
                run()
            wall[name].append((time.perf_counter() - start) / per_round * 1000)
            cpu[name].append((time.thread_time() - start_cpu) / per_round * 1000)
    return {name: {"median_ms": round(statistics.median(cpu[name]), 3),
                   "min_ms": round(min(cpu[name]), 3),
                   "wall_median_ms": round(statistics.median(wall[name]), 3)}
            for name in candidates}


def bench_architecture(name: str, options: BenchOptions) -> dict[str, object]:
    torch.set_num_threads(1)
    request = BuildRequest(arch=name, bits=2, epochs=options.epochs, qat_epochs=options.qat_epochs)
    built = build_model(request)
    row: dict[str, object] = {"model": name, "input": list(built.shape)}
    calibration = built.data.train_x[:256] if built.data else built.samples
    tflite_blob = export_int8(built.fp32, calibration)
    blobs = {2: compile_model(built.prepared, built.shape, name=f"{name}-w2")}
    prepared4 = calibrate(prepare(copy.deepcopy(built.fp32), QuantConfig(low_bits=4)), calibration)
    if built.data is not None:
        train(prepared4, built.data, epochs=options.qat_epochs, lr=1e-3, label="QAT 4-bit")
    blobs[4] = compile_model(prepared4, built.shape, name=f"{name}-w4")
    row["size_bytes"] = {"fp32": fp32_size(built.fp32), "tflite_int8": len(tflite_blob),
                         "lowbit_4": len(blobs[4]), "lowbit_2": len(blobs[2])}
    runtime = Runtime(blobs[2])
    row["kernels"] = runtime.kernels
    codes = input_codes(artifact.from_bytes(blobs[2]).meta, built.samples[:1])[0]
    expected = reference.run(artifact.from_bytes(blobs[2]).graph, codes).reshape(-1)
    row["bit_exact_vs_reference"] = bool(np.array_equal(runtime.run(codes), expected))
    if built.data is not None:
        x, y = built.data.test_x, built.data.test_y
        row["accuracy"] = {"fp32": accuracy(built.fp32, x, y), "qat_2bit_fakequant": accuracy(built.prepared, x, y),
                           "tflite_int8": tflite_accuracy(tflite_blob, x, y),
                           "lowbit_4": int_accuracy(Runtime(blobs[4]), blobs[4], x, y),
                           "lowbit_2": int_accuracy(runtime, blobs[2], x, y)}
    litert = backends.load(tflite_blob, xnnpack=True, threads=1)
    tflite_input = quantize_input(tflite_blob, built.samples[:1].numpy())
    image = built.samples[:1]
    with torch.no_grad():
        candidates = {"fp32_torch": lambda: built.fp32(image),
                      "tflite_int8_xnnpack": lambda: litert.run(tflite_input),
                      "lowbit_2": lambda: runtime.run(codes)}
        per_round = 200 if name == "digits" else 3
        row["latency"] = _latencies(candidates, options.rounds, per_round)
    lat = row["latency"]
    row["speedup_2bit_over_litert_int8"] = round(lat["tflite_int8_xnnpack"]["median_ms"] /
                                                 lat["lowbit_2"]["median_ms"], 3)
    row["size_ratio_fp32_over_2bit"] = round(row["size_bytes"]["fp32"] / row["size_bytes"]["lowbit_2"], 2)
    return row


def run_bench(options: BenchOptions) -> dict[str, object]:
    result: dict[str, object] = {"machine": machine(), "threads": 1, "models": {}}
    for name in options.architectures:
        result["models"][name] = bench_architecture(name, options)
    result["machine"]["load_after"] = round(os.getloadavg()[0], 2)
    models = result["models"]
    if "digits" in models:
        digits = models["digits"]
        result["size_ratio_fp32_over_2bit"] = digits["size_ratio_fp32_over_2bit"]
        result["accuracy_drop_2bit_points"] = round(100 * (digits["accuracy"]["fp32"] -
                                                           digits["accuracy"]["lowbit_2"]), 2)
    speed = [m["speedup_2bit_over_litert_int8"] for n, m in models.items() if n != "digits"]
    if speed:
        # The realistic networks (ResNet-18 at 224, YOLO-style at 256): geometric mean.
        result["speedup_2bit_over_litert_int8"] = round(float(np.exp(np.mean(np.log(speed)))), 3)
    return result


def table(result: dict[str, object]) -> str:
    m = result["machine"]
    lines = [f"machine: {m['cpu']}, {m['cores']} cores, load {m['load_before']} -> "
             f"{m.get('load_after')}, 1 thread each, torch {m['torch']}",
             "latency: thread CPU time per inference, median of interleaved rounds (wall-clock "
             "medians are in --json)",
             "model     | fp32 size | int8 tflite | 4-bit  | 2-bit  | fp32/2-bit | acc fp32 | acc int8 | acc 4-bit | acc 2-bit "
             "| fp32 torch ms | litert int8 ms | 2-bit ms | 2-bit vs int8 | exact",
             "-" * 178]
    for name, row in result["models"].items():
        s, a, lat = row["size_bytes"], row.get("accuracy"), row["latency"]
        acc = (f"{100 * a['fp32']:7.2f}% | {100 * a['tflite_int8']:7.2f}% | {100 * a['lowbit_4']:8.2f}% "
               f"| {100 * a['lowbit_2']:8.2f}%" if a else f"{'-':>8} | {'-':>8} | {'-':>9} | {'-':>9}")
        lines.append(
            f"{name:9} | {s['fp32'] / 1e3:7.1f}kB | {s['tflite_int8'] / 1e3:9.1f}kB | {s['lowbit_4'] / 1e3:5.1f}kB "
            f"| {s['lowbit_2'] / 1e3:5.1f}kB | {row['size_ratio_fp32_over_2bit']:9.1f}x | {acc} "
            f"| {lat['fp32_torch']['median_ms']:13.3f} | {lat['tflite_int8_xnnpack']['median_ms']:14.3f} "
            f"| {lat['lowbit_2']['median_ms']:8.3f} | {row['speedup_2bit_over_litert_int8']:12.2f}x "
            f"| {row['bit_exact_vs_reference']}")
    lines.append(f"headline: size fp32/2-bit (digits) {result.get('size_ratio_fp32_over_2bit')}x (target >= 12x); "
                 f"2-bit vs LiteRT int8 (geomean resnet18, yolo) {result.get('speedup_2bit_over_litert_int8')}x "
                 f"(target >= 1.5x); 2-bit accuracy drop {result.get('accuracy_drop_2bit_points')} points (target <= 3)")
    return "\n".join(lines)


def dumps(result: dict[str, object]) -> str:
    return json.dumps(result, sort_keys=True)
