"""Front end: read and check a spec, never raising on bad input (findings are diagnostics)."""
from __future__ import annotations

import gc
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from diaspec.checks import check_design
from diaspec.diagnostics import Diagnostics, Pos
from diaspec.index import DesignIndex
from diaspec.model import Design
from diaspec.parser import load_design


@dataclass
class CheckedDesign:
    """A design, its symbol table and the findings about it."""

    design: Design
    index: DesignIndex
    diagnostics: Diagnostics

    @property
    def ok(self) -> bool:
        return not self.diagnostics.has_errors

    @property
    def spec_hash(self) -> str:
        """sha256 over every file of the design (include order), to stamp generated files."""
        digest = hashlib.sha256()
        for file in self.design.files:
            digest.update(os.path.basename(file).encode() + b"\0")
            digest.update(self.design.source_text[file].encode("utf-8") + b"\0")
        return digest.hexdigest()

    @property
    def app_name(self) -> str:
        stem = os.path.splitext(os.path.basename(self.design.main_file))[0]
        return stem


@contextmanager
def _without_gc_pauses() -> Iterator[None]:
    """A parse allocates millions of small objects and frees none: the cyclic collector would
    rescan them again and again (a third of a large design's check time) and find nothing."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def check_spec(path: str | os.PathLike[str]) -> CheckedDesign:
    """Parse (includes resolved) and check a spec. Pathological input becomes one diagnostic."""
    with _without_gc_pauses():
        return _check_spec(path)


def _check_spec(path: str | os.PathLike[str]) -> CheckedDesign:
    diags = Diagnostics()
    design = Design(main_file=os.path.normpath(str(path)))
    try:
        design = load_design(path, diags)
        if not diags.has_errors:  # semantic checks on a half-read design only mislead
            index = check_design(design, diags)
        else:
            index = DesignIndex(design)
    except RecursionError:
        diags.error(Pos(design.main_file, 1, 1), "design is too deeply nested to compile")
        index = DesignIndex(Design(main_file=design.main_file))
    except MemoryError:
        diags.error(Pos(design.main_file, 1, 1), "design is too large to compile in memory")
        index = DesignIndex(Design(main_file=design.main_file))
    return CheckedDesign(design, index, diags)
