"""The compiled tree walker gives LightGBM's predictions bit for bit (``np.array_equal``, raw scores
and probabilities) on small random models and data full of LightGBM's edge cases, and refuses, with
the reason, the models it does not implement."""

import logging
import re

import lightgbm as lgb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from karte_assets.training import trees
from karte_assets.training.scoring import predict

ZERO = trees.ZERO_THRESHOLD
# NaN, both zeros, values on either side of LightGBM's zero threshold (1e-35f widened to double),
# infinities: each takes its own path in LightGBM's row conversion or NumericalDecision.
SPECIAL = [np.nan, 0.0, -0.0, 1e-36, -1e-36, ZERO, -ZERO, np.nextafter(ZERO, 1), 1e-35, np.inf, -np.inf]
VALUES = st.one_of(st.sampled_from(SPECIAL), st.floats(-3, 3, width=64), st.integers(-3, 3).map(float))
# LightGBM's ways of handling missing values and the missing type they give the nodes: NaN (the
# default), Zero, None.
MISSING = [({}, 2), ({"zero_as_missing": True}, 1), ({"use_missing": False}, 0)]


def train(features: np.ndarray, rounds: int, leaves: int, **params: object) -> lgb.Booster:
    rng = np.random.default_rng(len(features))
    signal = np.nan_to_num(features[:, 0], posinf=3, neginf=-3) + np.nan_to_num(features[:, -1])
    labels = (signal + rng.normal(0, 0.5, len(features)) > 0).astype(int)
    labels[:2] = [0, 1]
    fixed = {"objective": "binary", "num_leaves": leaves, "min_data_in_leaf": 1, "min_data_in_bin": 1}
    return lgb.train(
        {**fixed, "verbose": -1, "num_threads": 1, **params}, lgb.Dataset(features, labels), rounds
    )


def splits(booster: lgb.Booster) -> tuple[np.ndarray, np.ndarray]:
    """Every split's feature and threshold, from the model's text."""
    lines = booster.model_to_string().splitlines()
    read = lambda key, dtype: np.array(  # noqa: E731
        [v for line in lines if line.startswith(key + "=") for v in line.split("=")[1].split()], dtype
    )
    return read("split_feature", np.int64), read("threshold", np.float64)


def probes(booster: lgb.Booster, rows: np.ndarray) -> np.ndarray:
    """``rows`` and, per feature, the model's thresholds exactly and one double either side, and
    every special value."""
    thresholds = splits(booster)[1]
    with np.errstate(over="ignore"):  # the largest double's next is infinity
        values = np.concatenate(
            [thresholds, np.nextafter(thresholds, np.inf), np.nextafter(thresholds, -np.inf), SPECIAL]
        )
    blocks = [rows]
    for j in range(rows.shape[1]):
        block = np.repeat(rows[:1], len(values), axis=0)
        block[:, j] = values
        blocks.append(block)
    return np.concatenate(blocks)


def assert_identical(booster: lgb.Booster, rows: np.ndarray) -> None:
    model = trees.load(booster)
    raw = trees.raw_scores(model, rows, threads=2)
    assert np.array_equal(raw, booster.predict(rows, raw_score=True))
    assert np.array_equal(trees.probabilities(model, raw), booster.predict(rows))


@settings(max_examples=10, deadline=None)
@given(
    features=hnp.arrays(np.float64, st.tuples(st.integers(40, 80), st.integers(1, 4)), elements=VALUES),
    missing=st.sampled_from([params for params, _ in MISSING]),
    rounds=st.integers(1, 12),
    leaves=st.integers(2, 12),
)
def test_random_models_on_edge_values_predict_as_lightgbm(features, missing, rounds, leaves):
    booster = train(features, rounds, leaves, **missing)
    assert_identical(booster, probes(booster, features))


@pytest.mark.parametrize(("missing", "kind"), MISSING, ids=["nan", "zero", "none"])
def test_each_missing_type_is_walked_as_lightgbm(missing, kind):
    """Each missing type really occurs in its model (not only the default NaN), with many trees,
    whose sum order shows in the last bits."""
    rng = np.random.default_rng(7)
    features = rng.normal(size=(2_000, 4))
    features[rng.random(features.shape) < 0.1] = 0.0
    features[rng.random(features.shape) < 0.1] = np.nan
    booster = train(features, 60, 15, **missing)
    names = {0: "None", 1: "Zero", 2: "NaN"}
    assert set(re.findall(r"'missing_type': '(\w+)'", str(booster.dump_model()))) == {names[kind]}
    assert_identical(booster, probes(booster, features))


def test_a_model_of_single_leaf_trees_is_its_leaves_sum():
    features = np.zeros((50, 2))  # nothing to split on: every tree is one leaf
    booster = train(features, 3, 4)
    assert set(trees.load(booster).depths) == {0}
    assert_identical(booster, features)


@pytest.mark.parametrize(
    ("params", "categorical", "reason"),
    [
        ({}, [0], "categorical"),
        ({"linear_tree": True}, [], "linear tree"),
        ({"objective": "multiclass", "num_class": 3}, [], "3 classes"),
        ({"objective": "regression"}, [], "objective 'regression'"),
        ({"sigmoid": 0.5}, [], "sigmoid"),
    ],
)
def test_models_the_walker_does_not_implement_fall_back_to_lightgbm(params, categorical, reason, caplog):
    rng = np.random.default_rng(3)
    features = np.column_stack([rng.integers(0, 6, 300), rng.normal(size=300)]).astype(np.float64)
    labels = ((features[:, 0] % 2 == 0) ^ (features[:, 1] > 0)).astype(int)
    if params.get("objective") == "multiclass":
        labels = features[:, 0].astype(int) % 3
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "num_threads": 1, "min_data_in_leaf": 5, **params},
        lgb.Dataset(features, labels, categorical_feature=categorical),
        5,
    )
    with pytest.raises(trees.Unsupported, match=reason):
        trees.load(booster)
    with caplog.at_level(logging.WARNING, logger=trees.__name__):
        scores = predict(booster, features, threads=2)
    assert reason in caplog.text and "LightGBM's predict" in caplog.text
    assert np.array_equal(scores, booster.predict(features, num_threads=2))


def test_a_matrix_of_another_shape_or_type_is_refused():
    features = np.random.default_rng(1).normal(size=(100, 3))
    model = trees.load(train(features, 2, 4))
    with pytest.raises(ValueError, match="2 columns, the model 3 features"):
        trees.raw_scores(model, features[:, :2], threads=1)
    with pytest.raises(TypeError, match="float32"):
        trees.raw_scores(model, features.astype(np.float32), threads=1)


def test_numba_with_intel_svml_is_refused(monkeypatch):
    # SVML's vectorised exp is not libm's: the probabilities could differ from LightGBM's in the last bit.
    features = np.random.default_rng(2).normal(size=(100, 3))
    booster = train(features, 2, 4)
    monkeypatch.setattr(trees.numba.config, "USING_SVML", True)
    with pytest.raises(trees.Unsupported, match="SVML"):
        trees.load(booster)
