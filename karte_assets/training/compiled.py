"""Optional compiled tree inference for the scoring job: the model as C (treelite + tl2cgen).

LightGBM walks each tree of the model through its generic tree structure; tl2cgen writes the trees
as nested ``if``s of C, compiles them with the machine's C compiler and sums the leaf values per
row in tree order, in double, then applies the same sigmoid: the same arithmetic in the same
order, so the same scores bit for bit (karte_assets_tests/test_compiled_scoring.py checks a model
trained by the project's trainer, and BENCHMARKS.md the bench model), for 2-3x less CPU.

Off unless ``KARTE_COMPILED_SCORING`` names a directory: compiling takes seconds per model (gcc),
so each model's library is kept there, named by the model's content hash, and reused by every day
the model scores. Where treelite, tl2cgen or a C compiler is missing, or a compiled model's scores
differ from LightGBM's on a batch's sample, the job scores with LightGBM, with identical results.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import lightgbm as lgb
import numpy as np

ENV = "KARTE_COMPILED_SCORING"
# Rows of each batch also predicted by LightGBM to check the compiled model against it.
CHECKED_ROWS = 1_024


def compiled_directory() -> Path | None:
    """Where compiled models are kept, or None when compiled scoring is off."""
    value = os.environ.get(ENV, "").strip()
    return Path(value) if value else None


def compile_model(booster: lgb.Booster, directory: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    """``booster`` as a compiled predictor (the library cached in ``directory`` by the model's
    hash); raises where it cannot be built (no treelite/tl2cgen, no compiler)."""
    import tl2cgen
    import treelite

    model_text = booster.model_to_string()
    library = directory / f"{hashlib.sha256(model_text.encode()).hexdigest()}.so"
    if not library.exists():
        directory.mkdir(parents=True, exist_ok=True)
        partial = library.with_suffix(f".{os.getpid()}.so")
        forest = treelite.frontend.from_lightgbm(booster)
        tl2cgen.export_lib(forest, toolchain="gcc", libpath=str(partial), params={"parallel_comp": threads})
        partial.replace(library)  # another job compiling the same model at once writes its own file
    predictor = tl2cgen.Predictor(str(library), nthread=threads)
    return lambda matrix: predictor.predict(tl2cgen.DMatrix(matrix)).reshape(-1)


class Scorer:
    """One client's model: the compiled predictor where it is on and checked, else LightGBM's own."""

    def __init__(self, booster: lgb.Booster, threads: int, log: Callable[[str], None] = print):
        self.booster, self.threads, self.log = booster, threads, log
        self.compiled: Callable[[np.ndarray], np.ndarray] | None = None
        directory = compiled_directory()
        if directory is not None:
            try:
                self.compiled = compile_model(booster, directory, threads)
            except Exception as error:  # noqa: BLE001 - optional: any failure to build means LightGBM
                log(f"compiled scoring unavailable, scoring with LightGBM: {type(error).__name__}: {error}")

    def lightgbm(self, matrix: np.ndarray) -> np.ndarray:
        # The model's num_threads is that of the machine it trained on: the scoring machine's here.
        return self.booster.predict(matrix, num_threads=self.threads)

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        if not len(matrix):
            return np.empty(0)
        if self.compiled is None:
            return self.lightgbm(matrix)
        scores = self.compiled(matrix)
        sample = matrix[:CHECKED_ROWS]
        if not np.array_equal(scores[: len(sample)], self.lightgbm(sample)):
            self.log("compiled model's scores differ from LightGBM's; scoring with LightGBM from here on")
            self.compiled = None
            return self.lightgbm(matrix)
        return scores
