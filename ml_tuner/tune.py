"""Tune one file: rank the coreset with the model, try the top sequences within the budget."""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from fleetforge.errors import UserError
from fleetforge.tools import run_tool
from ml_tuner import llvm
from ml_tuner.cache import MeasureCache
from ml_tuner.corpus import CLANG_OZ_FLAGS, O0_FLAGS, compile_to_ir
from ml_tuner.graph import build_graph
from ml_tuner.measure import Module, Sizes
from ml_tuner.model import GraphBatch, LoadedModel, load_model
from ml_tuner.parallel import default_workers
from ml_tuner.search import Choice, try_ranked

SHIPPED_MODEL = Path(__file__).parent / "data" / "model.pt"
# Trained on the IR clang -Oz optimizes (`fleetforge tune.train --ir clang-oz`); used for IR whose
# functions carry minsize, when present.
SHIPPED_CLANG_OZ_MODEL = Path(__file__).parent / "data" / "model-clang-oz.pt"
# How a .c file becomes IR. "clang-oz" (default): the IR `clang -Oz` itself optimizes, whose
# functions carry optsize/minsize, so the -Oz floor is real `clang -Oz` and codegen optimizes
# for size. "o0": -O0 -disable-O0-optnone IR, the paper's/CompilerGym's setting, whose -Oz is
# much weaker in .text bytes (see docs/ml_tuner.md).
IR_FLAGS = {"clang-oz": CLANG_OZ_FLAGS, "o0": O0_FLAGS}
GRAPH_MAX_NODES = 12000  # as in training (TrainConfig.max_nodes)


@dataclass(frozen=True)
class TuneResult:
    """What `python -m ml_tuner tune` reports."""

    passes: tuple[str, ...]
    label: str
    compilations: int
    seconds: float
    oz: Sizes
    tuned: Sizes

    def as_json(self) -> dict:
        return {"passes": list(self.passes), "compilations": self.compilations,
                "seconds": round(self.seconds, 3), "oz": self.oz.as_dict(),
                "tuned": self.tuned.as_dict()}


def rank(loaded: LoadedModel, ll_text: str) -> list[tuple[tuple[str, ...], str]]:
    """Coreset sequences ordered by the model's predicted value, best first."""
    torch.set_num_threads(1)
    with torch.no_grad():
        predicted = loaded.model(GraphBatch([build_graph(ll_text, GRAPH_MAX_NODES)]))[0]
    order = torch.argsort(predicted, descending=True).tolist()
    return [(loaded.sequences[i], loaded.labels[i]) for i in order]


def prepare_module(path: Path, triple: str, scratch: Path, ir_from: str = "clang-oz"
                   ) -> tuple[Module, str]:
    """Turn FILE (.c, .ll or .bc) into an IR module plus its text (for the graph)."""
    if not path.is_file():
        raise UserError("no such file", where=str(path))
    if ir_from not in IR_FLAGS:
        raise UserError(f"--ir-from must be one of {', '.join(IR_FLAGS)} (got {ir_from})")
    suffix = path.suffix
    if suffix == ".c":
        ll = scratch / (path.stem + ".ll")
        compile_to_ir(path, ll, triple, flags=IR_FLAGS[ir_from])
    elif suffix == ".ll":
        ll = path
    elif suffix == ".bc":
        ll = scratch / (path.stem + ".ll")
        run_tool([f"llvm-dis-{llvm.LLVM_VERSION}", path, "-o", ll],
                 debian_package=llvm.LLVM_PACKAGE)
    else:
        raise UserError("expected a .c, .ll or .bc file", where=str(path))
    return Module.from_file(ll, path.name), ll.read_text(errors="replace")


def default_model_for(ll_text: str) -> Path:
    """The shipped model matching how the IR was produced (minsize functions: clang -Oz IR)."""
    has_minsize = any(line.startswith("attributes #") and "minsize" in line
                      for line in ll_text.splitlines())
    if has_minsize and SHIPPED_CLANG_OZ_MODEL.is_file():
        return SHIPPED_CLANG_OZ_MODEL
    return SHIPPED_MODEL


def tune_file(path: Path, triple: str, budget: int = 45, model_path: Path | None = None,
              cache: MeasureCache | None = None, workers: int | None = None,
              ir_from: str = "clang-oz") -> TuneResult:
    """Rank with the model, measure -Oz plus the top `budget - 1` sequences, keep the best."""
    if budget < 1:
        raise UserError(f"--budget must be at least 1 (got {budget})")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ml_tuner-tune-") as scratch:
        module, text = prepare_module(path, triple, Path(scratch), ir_from)
        model_path = model_path or default_model_for(text)
        if not model_path.is_file():
            raise UserError("no trained model: run `fleetforge tune.train`", where=str(model_path))
        ranked = rank(load_model(model_path), text)
        choice: Choice = try_ranked(module, triple, ranked, budget, cache,
                                    workers or default_workers())
    return TuneResult(choice.passes, choice.label, choice.compilations,
                      time.perf_counter() - start, choice.oz, choice.sizes)
