"""The action space is valid for the pinned opt, and -Oz edits parse and print back."""
from __future__ import annotations

import subprocess
from pathlib import Path

from ml_tuner.actions import Edit, candidate_pool, load_actions, sequence
from ml_tuner.measure import measure_uncached
from ml_tuner.pipeline import drop, expand, parse, render


def test_oz_expansion_round_trips():
    text = subprocess.run(["opt-16", "-passes=default<Oz>", "-print-pipeline-passes",
                           "-disable-output", "/dev/null"], capture_output=True, text=True,
                          check=True).stdout.strip()
    printed = ",".join(render(parse(text)))
    # opt prints `gvn<>` where the parameterless form is equivalent.
    assert printed == text.replace("<>", "")


def test_drop_removes_nested_elements_and_empty_containers():
    elements = parse("a,function(b,loop(c)),d")
    assert ",".join(render(drop(elements, frozenset({"c"})))) == "a,function(b),d"
    assert ",".join(render(drop(elements, frozenset({"b", "c"})))) == "a,d"


def test_every_single_pass_and_droppable_is_known_to_opt(add_ll: Path):
    space = load_actions()
    flat = ",".join(render(expand("Oz"))).replace("(", ",").replace(")", ",").split(",")
    for name in space.droppable:
        assert name in flat, f"{name} is not an element of LLVM 16's -Oz"
    # One at a time: opt infers a pipeline's level (module/function) from its first pass.
    for name in space.passes:
        assert measure_uncached(add_ll, (name,), "aarch64-linux-gnu").ir_instructions >= 2


def test_pool_sequences_run(add_ll: Path):
    space = load_actions()
    pool = candidate_pool(space, 30)
    assert len(set(pool)) == 30 and pool[0] == Edit(frozenset(), "none")
    for edit in pool[:: 6]:
        assert measure_uncached(add_ll, sequence(edit, space), "aarch64-linux-gnu").text_bytes == 8
