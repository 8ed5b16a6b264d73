"""The backtest's metrics and windows on series small enough to compute by hand."""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from karte_assets.demand.backtest import backtest, cutoffs
from karte_assets.demand.metrics import covered, mase_scale, rmsse_scale, series_scores, summarise


def panel(series: dict[str, list[float]], start: str = "2026-01-01") -> pd.DataFrame:
    return pd.concat(
        pd.DataFrame({"unique_id": uid, "ds": pd.date_range(start, periods=len(y), freq="D"), "y": y})
        for uid, y in series.items()
    ).reset_index(drop=True)


def test_mase_and_rmsse_by_hand():
    history = panel({"a": [0, 0, 2, 4, 3, 6]})
    # Season 2: |2-0| + |4-0| + |3-2| + |6-4| = 9 over 4 differences -> 2.25.
    assert mase_scale(history["y"], 2) == 2.25
    # From the first sale on, [2, 4, 3, 6]: squared one-step changes 4, 1, 9 -> 14/3.
    assert rmsse_scale(history["y"]) == pytest.approx(14 / 3)
    forecast = pd.DataFrame(
        {
            "unique_id": "a",
            "ds": pd.to_datetime(["2026-01-07", "2026-01-08"]),
            "y": [5.0, 8.0],
            "forecast": [4.0, 4.0],
            "lo_80": [3.0, 3.0],
            "hi_80": [5.0, 5.0],
        }
    )
    row = series_scores(history, forecast, season_length=2, levels=(80,)).iloc[0]
    assert row["mase"] == pytest.approx((1 + 4) / 2 / 2.25)  # 1.111...
    assert row["rmsse"] == pytest.approx(math.sqrt((1 + 16) / 2 / (14 / 3)))
    assert row["units"] == 9.0  # the last two days of history: 3 + 6
    assert row["coverage_80"] == 0.5  # 5 lies on the upper bound (closed), 8 above it


def test_wrmsse_weights_by_recent_units_and_mase_skips_flat_series():
    scores = pd.DataFrame(
        {
            "unique_id": ["a", "b", "flat"],
            "mase": [1.0, 2.0, np.nan],
            "rmsse": [1.0, 4.0, np.nan],
            "units": [30.0, 10.0, 0.0],
            "coverage_80": [1.0, 0.5, 0.0],
        }
    )
    summary = summarise(scores, levels=(80,))
    assert summary["mase"] == 1.5
    assert summary["wrmsse"] == pytest.approx(0.75 * 1.0 + 0.25 * 4.0)
    assert summary["coverage_80"] == pytest.approx(0.5)


def test_flat_history_has_no_scale():
    assert math.isnan(mase_scale(np.array([3.0, 3.0, 3.0]), 1))
    assert math.isnan(rmsse_scale(np.zeros(5)))
    assert math.isnan(mase_scale(np.array([1.0, 2.0]), 7))  # shorter than a season


def test_coverage_is_closed_and_refuses_inverted_intervals():
    assert covered([1, 2, 3], [1, 0, 4], [1, 5, 5]).tolist() == [True, True, False]
    with pytest.raises(ValueError, match="lower bound is above"):
        covered([1], [2], [1])


@dataclass(frozen=True)
class LastValue:
    """Forecasts each series' last value plus ``offset``, within +-``width``: a forecaster simple
    enough to score by hand."""

    name: str
    width: float = 1.0
    offset: float = 0.0

    def forecast(self, history, horizon, levels=(80,)):
        last = history.sort_values("ds").groupby("unique_id").tail(1)
        out = pd.DataFrame(
            [
                {
                    "unique_id": row.unique_id,
                    "ds": row.ds + pd.Timedelta(days=step),
                    "forecast": row.y + self.offset,
                }
                for row in last.itertuples()
                for step in range(1, horizon + 1)
            ]
        )
        for level in levels:
            out[f"lo_{level}"], out[f"hi_{level}"] = (
                out["forecast"] - self.width,
                out["forecast"] + self.width,
            )
        return out


def test_cutoffs_end_on_the_last_period_and_need_enough_history():
    history = panel({"a": list(range(10))})
    assert cutoffs(history, horizon=2, windows=3) == list(
        pd.to_datetime(["2026-01-04", "2026-01-06", "2026-01-08"])
    )
    with pytest.raises(ValueError, match="needs more than 10"):
        cutoffs(history, horizon=5, windows=2)


def test_backtest_scores_each_window_from_its_own_past_and_picks_the_lowest_mase():
    history = panel({"a": [1.0, 3.0, 2.0, 4.0, 5.0, 6.0]})
    forecasters = [LastValue("last", width=1.5), LastValue("last_plus", width=0.5, offset=1.5)]
    result = backtest(history, forecasters, horizon=2, windows=2, season_length=1, levels=(80,))
    last = result.scores[result.scores["model"] == "last"].set_index("window")
    # Window 1: history [1, 3] (scale |3-1| = 2); forecast 3, 3 for actuals 2, 4; interval [1.5, 4.5].
    assert last.loc[1, "mase"] == pytest.approx((1 + 1) / 2 / 2)
    assert last.loc[1, "coverage_80"] == 1.0
    # Window 2: history [1, 3, 2, 4] (scale (2+1+2)/3); forecast 4, 4 for 5, 6; interval [2.5, 5.5].
    assert last.loc[2, "mase"] == pytest.approx((1 + 2) / 2 / (5 / 3))
    assert last.loc[2, "coverage_80"] == 0.5
    plus = result.scores[result.scores["model"] == "last_plus"].set_index("window")
    # 4.5 for 2, 4 -> MASE 1.5 / 2; then 5.5 for 5, 6 -> 0.5 / (5/3); intervals +-0.5 hold 4 and 5, 6.
    assert plus["mase"].tolist() == pytest.approx([0.75, 0.3])
    assert plus["coverage_80"].tolist() == [0.5, 1.0]
    assert result.summary["model"].tolist() == ["last_plus", "last"]
    assert result.winner == "last_plus"
    assert result.reason.startswith(
        "last_plus has the lowest MASE (0.525) over 2 rolling windows of 2 periods"
    )
    assert "last 0.700" in result.reason and "80 % intervals covered 75%" in result.reason
