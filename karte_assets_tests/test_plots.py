"""Charts: what each figure draws, the PNGs the metadata carries, and the graph's charts end to end."""

import base64
import datetime as dt
import io
import json
import logging
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from karte_assets import plots
from karte_assets.assets.scores import SCORE_BINS, users_per_score_bin
from karte_assets.training.evaluation import calibration_bins, gain_curve, validation_summary
from karte_assets_tests.graph import FIRST_DAY, LocalGraph, config_with

CHARTS = {
    "raw_events": ["event_volume_chart"],
    "loyalty_model": ["gain_lift_chart", "calibration_chart", "feature_importance_chart"],
    "loyalty_scores": ["score_distribution_chart", "score_change_chart"],
}


def decoded(markdown: str) -> Image.Image:
    """The PNG inside a Markdown image with a data URI."""
    payload = re.fullmatch(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert payload, markdown[:80]
    return Image.open(io.BytesIO(base64.b64decode(payload.group(1))))


def assert_drawn(image: Image.Image) -> None:
    """The agreed size, and more than a blank canvas: a fair share of ink in several colours."""
    assert image.format == "PNG" and image.size == (600, 350)
    pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    ink = (pixels < 230).any(axis=1).mean()
    assert 0.03 < ink < 0.9, ink
    assert len(np.unique(pixels, axis=0)) > 20


def rendered(figure) -> Image.Image:
    image = decoded(plots.image_markdown(plots.png(figure), "chart").value)
    assert_drawn(image)
    return image


def test_gain_spreads_the_positives_of_tied_scores_evenly_and_a_perfect_ranking_finds_them_first():
    labels = np.array([1, 0, 0, 1, 0, 0, 0, 0, 1, 0])
    assert gain_curve(labels, np.zeros(10)) == pytest.approx(np.linspace(0, 1, 11))
    perfect = gain_curve(labels, labels.astype(float))
    assert perfect[:4] == pytest.approx([0, 1 / 3, 2 / 3, 1], abs=1e-4) and perfect[-1] == 1
    # Two tied groups: the top 20% of users are half of a group of four holding two positives.
    grouped = gain_curve(labels, np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0]), points=5)
    assert grouped == pytest.approx([0, 1 / 3, 2 / 3, 2 / 3 + 1 / 9, 2 / 3 + 2 / 9, 1], abs=1e-4)


def test_calibration_bins_hold_equal_counts_with_their_mean_prediction_and_observed_rate():
    rng = np.random.default_rng(3)
    predicted = rng.random(1000)
    labels = (rng.random(1000) < predicted).astype(int)
    bins = calibration_bins(labels, predicted)
    assert bins["users"] == [100] * 10
    order = np.argsort(predicted)
    assert bins["predicted"][0] == pytest.approx(predicted[order[:100]].mean(), abs=1e-4)
    assert bins["observed"][-1] == pytest.approx(labels[order[-100:]].mean(), abs=1e-4)
    assert np.all(np.diff(bins["predicted"]) > 0)


def test_the_validation_summary_is_a_few_numbers_whatever_the_number_of_users():
    rng = np.random.default_rng(4)
    predicted = rng.random(50_000)
    labels = (rng.random(50_000) < predicted).astype(int)
    summary = validation_summary(labels, predicted, rng.poisson(1, 50_000), "purchases_90d")
    assert len(json.dumps(summary)) < 1500
    assert summary["positive_rate"] == pytest.approx(labels.mean(), abs=1e-4)


def test_the_score_distribution_marks_each_tier_cutoff_with_its_size():
    counts = [50, 30, 20, 10, 5, 3, 2, 1, 0, 1]
    figure = plots.score_distribution_figure(
        counts, {"A": 0.62, "B": 0.35}, {"A": 12, "B": 25, "none": 85}, dt.date(2026, 6, 9)
    )
    ax = figure.axes[0]
    assert [bar.get_height() for bar in ax.patches] == counts
    assert [bar.get_x() for bar in ax.patches] == pytest.approx(np.arange(10) / 10)
    cutoffs = {
        line.get_label(): line.get_xdata()[0]
        for line in ax.get_lines()
        if line.get_label().startswith("tier")
    }
    assert cutoffs == {
        "tier A: 12 users, lowest score 0.620": 0.62,
        "tier B: 25 users, lowest score 0.350": 0.35,
    }
    assert "no coupon: 85 users" in [text.get_text() for text in ax.get_legend().get_texts()]
    rendered(figure)


def test_the_score_change_compares_shares_of_users_with_the_previous_day_or_says_there_is_none():
    today, previous = [30, 10, 10], [10, 5, 5]
    ax = plots.score_change_figure(today, previous, "2026-06-09", "2026-06-08").axes[0]
    steps = {patch.get_label(): patch.get_data()[0] for patch in ax.patches}
    assert steps["2026-06-09: 50 users"] == pytest.approx([60, 20, 20])
    assert steps["2026-06-08: 20 users"] == pytest.approx([50, 25, 25])
    alone = plots.score_change_figure(today, None, "2026-06-01", "2026-05-31")
    assert len(alone.axes[0].patches) == 1
    assert "no scores for the previous day" in alone.axes[0].get_title()
    rendered(alone)


def test_gain_and_lift_draw_the_model_against_the_baseline():
    summary = {
        "positive_rate": 0.2,
        "baseline": "purchases_90d",
        "gain": {"model": [0, 0.5, 0.8, 1.0], "baseline": [0, 0.4, 0.7, 1.0]},
        "calibration": {},
    }
    figure = plots.gain_lift_figure(summary)
    gain_ax, lift_ax = figure.axes
    lines = {line.get_label(): list(line.get_ydata()) for line in gain_ax.get_lines()}
    assert lines["model"] == [0, 0.5, 0.8, 1.0]
    assert lines["baseline (purchases_90d)"] == [0, 0.4, 0.7, 1.0]
    heights = [bar.get_height() for bar in lift_ax.patches]
    assert heights == pytest.approx([1.5, 0.9, 0.6, 1.2, 0.9, 0.9])  # model deciles, then baseline
    rendered(figure)


def test_calibration_feature_importance_and_event_volume_draw_their_data():
    calibration = {"predicted": [0.05, 0.2, 0.5], "observed": [0.04, 0.25, 0.45], "users": [10, 10, 10]}
    model_line = plots.calibration_figure(calibration).axes[0].get_lines()[1]
    assert list(model_line.get_xdata()) == calibration["predicted"]
    assert list(model_line.get_ydata()) == calibration["observed"]

    importance = {f"feature_{i}": float(i) for i in range(1, 21)}
    bars = plots.feature_importance_figure(importance).axes[0].patches
    assert len(bars) == 15
    assert bars[-1].get_width() == pytest.approx(100 * 20 / sum(importance.values()))

    counts = pd.DataFrame({"event_name": ["view", "purchase"], "events": [900, 40], "users": [300, 35]})
    figure = plots.event_volume_figure(counts, "2026-06-01")
    assert sorted(bar.get_width() for bar in figure.axes[0].patches) == [40, 900]
    rendered(figure)


def test_a_chart_that_fails_is_left_out_with_a_warning_and_the_others_stay(caplog):
    def broken():
        raise ValueError("no data")

    counts = pd.DataFrame({"event_name": ["view"], "events": [3], "users": [2]})
    with caplog.at_level(logging.WARNING):
        entries = plots.chart_metadata(
            logging.getLogger("test"),
            {"broken_chart": broken, "events_chart": lambda: plots.event_volume_figure(counts, "day")},
        )
    assert list(entries) == ["events_chart"]
    assert_drawn(decoded(entries["events_chart"].value))
    (record,) = caplog.records
    assert "broken_chart" in record.getMessage() and "no data" in str(record.exc_info[1])


@pytest.fixture(scope="module")
def trained_graph(tmp_path_factory):
    """Eight days with a 3-day label horizon: a model trains on the last day, which has a day before it."""
    graph = LocalGraph(tmp_path_factory.mktemp("charts") / "karte")
    config = config_with(
        loyalty_training_set={"horizon_days": 3, "snapshot_every_days": 3},
        loyalty_model={"retrain_every_days": 1},
    )
    result = graph.materialize(FIRST_DAY, FIRST_DAY + dt.timedelta(days=7), run_config=config)
    return graph, result


def test_every_asset_with_charts_carries_them_as_pngs_and_the_cutoffs_match_the_scores(trained_graph):
    graph, result = trained_graph
    last = FIRST_DAY + dt.timedelta(days=7)
    for node, names in CHARTS.items():
        metadata = result.asset_materializations_for_node(node)[0].metadata
        for name in names:
            assert_drawn(decoded(metadata[name].value))

    scores_metadata = result.asset_materializations_for_node("loyalty_scores")[0].metadata
    scores = graph.table("loyalty_scores", last)
    assert scores["model_version"].iloc[0].startswith("loyalty-"), "the last day must be scored by a model"
    lowest = scores[scores["coupon_tier"] != "none"].groupby("coupon_tier")["loyal_score"].min()
    assert scores_metadata["tier_cutoffs"].value == pytest.approx(lowest.to_dict())
    expected, _ = np.histogram(scores["loyal_score"], bins=SCORE_BINS, range=(0, 1))
    assert list(users_per_score_bin(graph.warehouse, last)) == list(expected)
    assert users_per_score_bin(graph.warehouse, FIRST_DAY - dt.timedelta(days=1)) is None


def test_backfills_and_training_report_progress_in_the_run_log(trained_graph):
    graph, result = trained_graph
    messages = [entry.user_message for entry in graph.instance.all_logs(result.run_id)]
    assert any(re.search(r"loyalty_scores 2026-06-08: .* \(8/8 days, [\d.]+s elapsed\)", m) for m in messages)
    # Sent by the training subprocess through Pipes, not just printed to its stdout.
    rounds = [m for m in messages if re.match(r"round \d+/60: valid_0 auc [\d.]+ \([\d.]+s elapsed\)", m)]
    assert len(rounds) >= 2
    assert any(m.startswith("best round ") and "purchases_90d ranking" in m for m in messages)
