"""The scoring job's batches: the same scores as LightGBM's predict on the whole frame, bit for bit."""

import datetime as dt
import subprocess
import sys

import duckdb
import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from karte_assets.assets.training import ModelConfig
from karte_assets.training import trees
from karte_assets.training.loyalty import train_loyalty_model
from karte_assets.training.scoring import feature_matrix, score_batch, score_job
from karte_assets.training.uris import ParquetSink, parquet_batches
from karte_assets_tests.test_trees import splits

DAY = dt.date(2026, 8, 31)
# Features as user_features has them: integer counts, NULL where a user never purchased, and
# revenue with cents up to millions, whose float64 values are closer together than float32 can tell.
FEATURES_SQL = """
SELECT
  'u' || i AS user_id,
  (hash(i, $seed) % 300)::BIGINT AS tenure_days,
  (hash(i, $seed + 1) % 90)::BIGINT AS days_since_last_seen,
  CASE WHEN hash(i, $seed + 2) % 3 = 0 THEN NULL ELSE (hash(i, $seed + 3) % 120)::BIGINT END
    AS days_since_last_purchase,
  (hash(i, $seed + 4) % 7)::BIGINT AS purchases_90d,
  round((hash(i, $seed + 5) % 100000) / 100.0 + 0.01, 2)::DOUBLE AS revenue_90d,
  (hash(i, $seed + 7) % 1000000000) / 100.0 AS lifetime_revenue,
  CASE WHEN hash(i, $seed + 2) % 3 = 0 THEN NULL
       ELSE (hash(i, $seed + 6) % 10000) / 7.0 END AS average_order_value
FROM range($users) AS t(i)
"""


def features(users: int, seed: int) -> duckdb.DuckDBPyRelation:
    return duckdb.sql(FEATURES_SQL, params={"users": users, "seed": seed})


@pytest.fixture(scope="module")
def booster():
    """A model trained by the project's training function, default parameters, on labelled snapshots."""
    frames = []
    for week in range(6):
        frame = features(2_000, week).df()
        recency = frame["days_since_last_purchase"].fillna(200)
        chance = 1 / (
            1 + np.exp((recency - 30) / 10 - frame["revenue_90d"] / 250 + frame["tenure_days"] / 150)
        )
        frame["label"] = (np.random.default_rng(week).random(len(frame)) < chance).astype(int)
        frame["snapshot_date"] = DAY - dt.timedelta(days=28 + 7 * (5 - week))
        frames.append(frame)
    training = pd.concat(frames, ignore_index=True)
    model = train_loyalty_model(
        training, 14, ModelConfig().lightgbm_params(), 60, 10, log=lambda _: None
    ).booster
    assert model.num_trees() > 10
    return model


def export(tmp_path, users: int) -> str:
    """The audience as the warehouse exports it (DuckDB's COPY, as DuckDBWarehouse.export_query)."""
    path = tmp_path / "audience.parquet"
    features(users, 99).to_parquet(str(path))
    return str(path)


def test_batched_scores_equal_lightgbms_predict_on_the_whole_frame(booster, tmp_path):
    audience = export(tmp_path, 10_000)
    frame = pq.read_table(audience).to_pandas()
    assert trees.forest(booster) is not None  # the job's scores come from the compiled walker
    expected = booster.predict(frame[booster.feature_name()])  # the job's previous path
    scored = [score_batch(booster, batch, DAY, threads=2) for batch in parquet_batches(audience, 3_000)]
    assert [b.num_rows for b in scored] == [3_000, 3_000, 3_000, 1_000]
    scores = np.concatenate([b.column("loyal_score").to_numpy() for b in scored])
    assert np.array_equal(scores, expected)  # bit for bit, not approximately
    assert frame["days_since_last_purchase"].isna().any() and len(set(scores)) > 100
    assert [u for b in scored for u in b.column("user_id").to_pylist()] == frame["user_id"].tolist()
    assert {d for b in scored for d in b.column("partition_date").to_pylist()} == {DAY}
    assert scored[0].schema.names == ["partition_date", "user_id", "loyal_score"]


def test_the_compiled_walker_gives_lightgbms_raw_scores_and_probabilities(booster, tmp_path):
    """On the project's model with its many trees, where the order of the sum shows in the last
    bits, and features at each of its thresholds."""
    names = booster.feature_name()
    matrix = feature_matrix(pq.read_table(export(tmp_path, 10_000)).to_batches()[0], names)
    model = trees.load(booster)
    features, thresholds = splits(booster)
    at_thresholds = np.repeat(matrix[:1], len(thresholds), axis=0)
    at_thresholds[np.arange(len(thresholds)), features] = thresholds
    matrix = np.concatenate([matrix, at_thresholds])
    raw = trees.raw_scores(model, matrix, threads=2)
    assert np.array_equal(raw, booster.predict(matrix, raw_score=True, num_threads=2))
    assert np.array_equal(trees.probabilities(model, raw), booster.predict(matrix, num_threads=2))


def test_an_empty_audience_gives_a_scores_file_with_the_columns_and_no_rows(booster, tmp_path):
    audience = export(tmp_path, 0)
    scores_file = tmp_path / "scores" / "part-00000.parquet"
    with ParquetSink(str(scores_file)) as sink:
        for batch in parquet_batches(audience, 3_000):
            sink.write(score_batch(booster, batch, DAY, threads=2))
    table = pq.read_table(scores_file)
    assert table.num_rows == 0 and table.schema.names == ["partition_date", "user_id", "loyal_score"]


@pytest.mark.slow  # two Python processes importing LightGBM: a few CPU seconds
@pytest.mark.parametrize("module", ["karte_assets.training.scoring", "karte_assets.training.entrypoint"])
def test_a_jobs_process_starts_without_scikit_learn(module):
    """Every scored day starts a job process: LightGBM would import scikit-learn (installed here for
    the anomaly use case) on the way, most of the start's CPU."""
    probe = (
        "import runpy, sys\n"
        "try:\n"
        f"    runpy.run_module({module!r}, run_name='__main__')\n"
        "except BaseException:\n"
        "    pass  # no Pipes context here: the job stops after its imports\n"
        "print(sys.modules.get('sklearn') is not None, 'lightgbm' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True"], done.stderr


def test_one_job_scores_each_day_of_its_stretch_as_a_job_of_that_day_alone(booster, tmp_path):
    """A backfill's days that one model scores go to one job: the audience of every day in one
    export, the scores of each day in its own folder, equal to scoring that day alone; a day
    without users (here the middle one) still gets its empty file for the warehouse to load."""
    later = DAY + dt.timedelta(days=2)
    export = tmp_path / "audience" / "part-0.parquet"
    export.parent.mkdir()
    duckdb.sql(
        f"SELECT DATE '{DAY}' AS partition_date, 'default' AS client_id, * FROM ({FEATURES_SQL.replace('$users', '500').replace('$seed', '1')}) "
        f"UNION ALL SELECT DATE '{later}', 'default', * FROM ({FEATURES_SQL.replace('$users', '300').replace('$seed', '2')}) "
        "ORDER BY 1, 2, 3"
    ).to_parquet(str(export))
    model = tmp_path / "model.txt"
    model.write_text(booster.model_to_string())
    job = {
        "partition_dates": [str(DAY), str(DAY + dt.timedelta(days=1)), str(later)],
        "features_uri": f"{export.parent}/",
        "models": {"default": str(model)},
        "scores_uri": f"{tmp_path}/scores/",
    }
    logged = []
    assert score_job(job, logged.append) == 800 and len(logged) == 1
    for day, users in ((DAY, 500), (DAY + dt.timedelta(days=1), 0), (later, 300)):
        scores = pq.read_table(tmp_path / "scores" / str(day) / "part-00000.parquet")
        assert scores.schema.names == ["partition_date", "client_id", "user_id", "loyal_score"]
        audience = pq.read_table(export)
        alone = audience.filter(pc.equal(audience["partition_date"], day)).to_pandas()
        assert scores.num_rows == len(alone) == users
        expected = booster.predict(alone[booster.feature_name()]) if users else []
        assert np.array_equal(scores["loyal_score"].to_numpy(), expected)
        assert scores["user_id"].to_pylist() == alone["user_id"].tolist()
        assert set(scores["partition_date"].to_pylist()) <= {day}


def test_a_job_refuses_rows_of_a_day_it_was_not_given(booster, tmp_path):
    export = tmp_path / "audience" / "part-0.parquet"
    export.parent.mkdir()
    duckdb.sql(
        f"SELECT DATE '{DAY}' AS partition_date, 'default' AS client_id, * FROM ({FEATURES_SQL.replace('$users', '5').replace('$seed', '1')})"
    ).to_parquet(str(export))
    model = tmp_path / "model.txt"
    model.write_text(booster.model_to_string())
    job = {
        "partition_dates": [str(DAY + dt.timedelta(days=1))],
        "features_uri": f"{export.parent}/",
        "models": {"default": str(model)},
        "scores_uri": f"{tmp_path}/scores/",
    }
    with pytest.raises(ValueError, match=f"rows of {DAY}, which is not a day of this job"):
        score_job(job, print)
