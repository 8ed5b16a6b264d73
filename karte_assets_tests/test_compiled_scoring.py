"""Compiled scoring (training/compiled.py): the same scores as LightGBM's predict, bit for bit, on a
model trained by the project's trainer; LightGBM wherever the compiled model cannot be trusted.
Slow: training the model and compiling it with gcc take several seconds."""

import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from karte_assets.training.compiled import ENV, Scorer
from karte_assets.training.scoring import feature_matrix
from karte_assets_tests.test_scoring import booster, export  # noqa: F401 - the trained model fixture

pytest.importorskip("tl2cgen")
pytest.importorskip("treelite")
if shutil.which("gcc") is None:
    pytest.skip("no C compiler", allow_module_level=True)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """One directory of compiled models for the module: the model is compiled once, then reused."""
    return tmp_path_factory.mktemp("compiled")


def audience_matrix(booster, tmp_path, users):  # noqa: F811
    return feature_matrix(
        pq.read_table(export(tmp_path, users)).combine_chunks().to_batches()[0], booster.feature_name()
    )


def test_the_compiled_model_scores_exactly_as_lightgbm(booster, compiled, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv(ENV, str(compiled))
    matrix = audience_matrix(booster, tmp_path, 20_000)
    scorer = Scorer(booster, threads=2, log=pytest.fail)
    assert scorer.compiled is not None
    scores = scorer.compiled(matrix)  # the compiled model alone, on every row, no fallback
    expected = booster.predict(matrix, num_threads=2)
    assert np.isnan(matrix).any() and len(np.unique(scores)) > 100
    assert float(np.max(np.abs(scores - expected))) == 0.0
    assert len(list(compiled.glob("*.so"))) == 1  # kept for the model's next days


def test_a_compiled_model_that_disagrees_is_dropped_for_lightgbm(booster, compiled, tmp_path, monkeypatch):  # noqa: F811
    """Scores that differ in one row of the checked sample, by the least a double can."""
    monkeypatch.setenv(ENV, str(compiled))
    matrix = audience_matrix(booster, tmp_path, 3_000)
    messages = []
    scorer = Scorer(booster, threads=2, log=messages.append)
    assert scorer.compiled is not None
    right = scorer.compiled

    def off_by_one_ulp(rows):
        scores = right(rows)
        scores[7] = np.nextafter(scores[7], 1.0)
        return scores

    scorer.compiled = off_by_one_ulp
    scores = scorer.predict(matrix)
    assert np.array_equal(scores, booster.predict(matrix, num_threads=2))
    assert scorer.compiled is None and "differ" in messages[0]


def test_without_a_compiler_it_scores_with_lightgbm(booster, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv(ENV, str(tmp_path / "compiled"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    messages = []
    scorer = Scorer(booster, threads=2, log=messages.append)
    matrix = audience_matrix(booster, tmp_path, 1_000)
    assert scorer.compiled is None and "LightGBM" in messages[0]
    assert np.array_equal(scorer.predict(matrix), booster.predict(matrix, num_threads=2))
