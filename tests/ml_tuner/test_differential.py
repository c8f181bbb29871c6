"""csmith differential test in CI: 20 programs per target tuned as `ml-tuner tune` ships them,
linked and run on the target; each checksum must equal clang -Oz's build's (bench/
ml_tuner_csmith.py runs 200 per target through the whole-program search, every build checked)."""
from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ml_tuner.differential import check_unit

# Seeds of the CI run: after the bench's 200 (100001...), never in training (1..60).
FIRST = 200001
COUNT = 20


@pytest.mark.slow
@pytest.mark.parametrize("target", ["aarch64-linux-gnu", "thumbv7em-none-eabi"])
def test_twenty_csmith_programs_run_as_clang_oz_builds_do(target: str):
    with tempfile.TemporaryDirectory() as tmp:
        def one(seed: int):
            folder = Path(tmp) / str(seed)
            folder.mkdir()
            return check_unit(seed, target, 3, folder)

        with ThreadPoolExecutor(2) as pool:
            outcomes = list(pool.map(one, range(FIRST, FIRST + COUNT)))
    used = [o for o in outcomes if not o.skipped]
    assert len(used) >= COUNT * 3 // 4, [o.skipped for o in outcomes]
    assert all(o.shipped_flash <= o.baseline_flash for o in used)
    assert any(o.builds_checked for o in used), "no tuned build differed from clang -Oz's"
    wrong = {o.seed: o.candidate for o in used if not o.shipped_ok}
    assert not wrong, f"tuned builds whose checksum differs from clang -Oz's: {wrong}"
