"""Pluggable TFLite interpreters: LiteRT (ai-edge-litert, the default) or tflite-runtime 2.14
(numpy<2, small, armv7), both with the same Interpreter API. `xnnpack=False` asks for the
reference kernels (BUILTIN_REF), whose arithmetic lowbit.tflite_reference reproduces exactly."""
from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np

from fleetforge.errors import UserError

# backend name -> (module with Interpreter and OpResolverType, pip requirement that provides it)
BACKENDS = {"litert": ("ai_edge_litert.interpreter", "ai-edge-litert==2.3.0"),
            "tflite-runtime": ("tflite_runtime.interpreter", "tflite-runtime==2.14.0 (numpy<2)")}


@dataclass
class TfliteRunner:
    """One loaded model: run(int8 NHWC input) -> output codes."""

    interpreter: object
    backend: str

    def run(self, x: np.ndarray) -> np.ndarray:
        it = self.interpreter
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        return it.get_tensor(it.get_output_details()[0]["index"]).copy()


def load(model: bytes, *, backend: str = "litert", xnnpack: bool = True, threads: int = 1) -> TfliteRunner:
    if backend not in BACKENDS:
        raise UserError(f"unknown TFLite backend '{backend}' (known: {', '.join(BACKENDS)})")
    module_name, requirement = BACKENDS[backend]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise UserError(f"TFLite backend '{backend}' is not installed (pip install {requirement})") from None
    resolver = module.OpResolverType.AUTO if xnnpack else module.OpResolverType.BUILTIN_REF
    interpreter = module.Interpreter(model_content=model, num_threads=threads,
                                     experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    return TfliteRunner(interpreter, backend)
