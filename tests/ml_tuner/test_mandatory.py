"""What clang always runs stays in every candidate: always_inline functions end up inlined under
every coreset candidate the tuner ships (issue 15: a bare-name `drop` once removed the
always-inliner from 4 of 50 shipped sequences)."""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ml_tuner.build import compile_ir, emit_raw_ir
from ml_tuner.knobs import OZ, load_knobs, pool
from ml_tuner.model import shipped_model
from ml_tuner.train import TrainConfig

DATA = Path(__file__).parent / "data"
ALWAYS_INLINE = ("rotl", "mix", "mix_twice")
CALL = re.compile(r"\bcall\b[^@]*@([\w.]+)\(")


@pytest.mark.parametrize("target", ["aarch64-linux-gnu", "thumbv7em-none-eabi"])
def test_always_inline_survives_every_shipped_candidate(target: str, tmp_path: Path):
    space = load_knobs().for_target(target)
    model = shipped_model(target)
    # The shipped coreset; before a model is trained, the whole pool training picks it from.
    candidates = model.coreset if model else pool(space, TrainConfig.pool_size)
    raw = tmp_path / "always.ll"
    emit_raw_ir(DATA / "always.c", target, (), raw)
    # The raw IR clang -Oz optimizes still calls them (the premise of the test).
    assert {m for m in CALL.findall(raw.read_text())} >= set(ALWAYS_INLINE)
    # Code-generation knobs cannot change the IR: one build per distinct optimizer setting.
    by_ir_flags = {space.flags(c, "ir"): c for c in (OZ, *candidates)}

    def optimized(item) -> tuple[str, str]:
        index, candidate = item
        out = tmp_path / f"{index}.ll"
        compile_ir(raw, target, (), space, candidate, out, emit_llvm=True, text=True)
        return candidate.label, out.read_text()

    with ThreadPoolExecutor(2) as threads:
        for label, text in threads.map(optimized, enumerate(by_ir_flags.values())):
            left = set(CALL.findall(text)) & set(ALWAYS_INLINE)
            assert not left, f"{target} {label}: calls to always_inline {sorted(left)} remain"
            assert "define" in text and "@hash(" in text
