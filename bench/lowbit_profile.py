#!/usr/bin/env python3
"""Per-layer profile of the 2-bit runtime beside LiteRT's XNNPACK int8 on the same layer shapes.

For each node of the compiled 2-bit network: its thread CPU time (median of the runs), and for
each convolution the time LiteRT (XNNPACK, 1 thread) takes for a one-layer int8 model of the
same shape (conv + BN + ReLU, exported like the bench's networks). Shows where the 2-bit runtime
wins or loses against int8, layer by layer.

    .venv/bin/python bench/lowbit_profile.py [--arch resnet18,yolo] [--runs 15] [--no-litert]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
from torch import nn

from lowbit import artifact, backends
from lowbit.binding import Runtime
from lowbit.compiler import compile_model
from lowbit.pipeline import BuildRequest, build_model, input_codes
from lowbit.tflite_export import export_int8, quantize_input


def runtime_profile(runtime: Runtime, codes: np.ndarray, runs: int) -> list[tuple[str, float]]:
    samples = [runtime.profile(codes) for _ in range(runs)]
    return [(samples[0][i][0], statistics.median(s[i][1] for s in samples)) for i in range(len(samples[0]))]


def litert_layer_ms(cin: int, cout: int, kernel: int, stride: int, pad: int, hw: tuple[int, int],
                    runs: int) -> float:
    """Median thread CPU ms of one int8 conv+BN+ReLU layer of this shape in LiteRT (XNNPACK)."""
    torch.manual_seed(0)
    layer = nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, pad, bias=False), nn.BatchNorm2d(cout),
                          nn.ReLU()).eval()
    images = torch.rand(4, cin, *hw)
    blob = export_int8(layer, images)
    runner = backends.load(blob, xnnpack=True, threads=1)
    x = quantize_input(blob, images[:1].numpy())
    runner.run(x)
    times = []
    for _ in range(runs):
        start = time.thread_time()
        runner.run(x)
        times.append((time.thread_time() - start) * 1000)
    return statistics.median(times)


def profile(arch: str, runs: int, litert: bool) -> None:
    built = build_model(BuildRequest(arch=arch, bits=2))
    blob = compile_model(built.prepared, built.shape, name=f"{arch}-w2")
    model = artifact.from_bytes(blob)
    runtime = Runtime(blob)
    codes = input_codes(model.meta, built.samples[:1])[0]
    rows = runtime_profile(runtime, codes, runs)
    print(f"\n{arch} ({runtime.kernels}), load {os.getloadavg()[0]:.2f}")
    print(f"{'node':>4} {'op':8} {'kind':9} {'in HxWxC':>13} {'k/s':>5} {'out C':>5} {'MMAC':>7} "
          f"{'2-bit ms':>9} {'int8 ms':>8} {'ratio':>6}")
    total = total_int8 = 0.0
    by_kind: dict[str, float] = {}
    for index, (node, (op, ms)) in enumerate(zip(model.graph.nodes, rows)):
        total += ms
        source = model.graph.tensors[node.inputs[0]]
        h, w, c = source.shape
        kind = node.attrs.get("kind", "") if node.op == "conv" else ""
        key = f"{node.op} {kind}".strip()
        by_kind[key] = by_kind.get(key, 0.0) + ms
        line = f"{index:4} {op:8} {kind:9} {f'{h}x{w}x{c}':>13}"
        if node.op == "conv":
            kh, sh, ph = node.attrs["kernel"][0], node.attrs["stride"][0], node.attrs["pad"][0]
            out = model.graph.tensors[node.outputs[0]].shape
            mmac = out[0] * out[1] * out[2] * kh * kh * c / 1e6
            int8 = litert_layer_ms(c, out[2], kh, sh, ph, (h, w), runs) if litert else float("nan")
            total_int8 += 0 if np.isnan(int8) else int8
            line += f" {f'{kh}/{sh}':>5} {out[2]:5} {mmac:7.1f} {ms:9.3f} {int8:8.3f} {int8 / ms:5.2f}x"
        else:
            line += f" {'':>5} {'':>5} {'':>7} {ms:9.3f}"
        print(line)
    print(f"total 2-bit {total:.3f} ms; int8 convs alone in LiteRT {total_int8:.3f} ms")
    for key, ms in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print(f"  {key:16} {ms:8.3f} ms ({100 * ms / total:4.1f}%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet18,yolo")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--no-litert", action="store_true", help="profile the 2-bit runtime only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for arch in args.arch.split(","):
        profile(arch, args.runs, not args.no_litert)


if __name__ == "__main__":
    main()
