"""Nothing after day D is read when building day D: changing the future leaves D's tables alone."""

import datetime as dt

import pandas as pd
import pytest

from karte_assets.partitions import day_window
from karte_assets.synthetic import SyntheticWorld, generate_day
from karte_assets_tests.graph import FIRST_DAY, LocalGraph, config_with, days

D = FIRST_DAY + dt.timedelta(days=14)  # the first day a model trains with the test config
LAST = D + dt.timedelta(days=3)
CHECKED = [
    "user_daily_activity",
    "user_profile",
    "user_features",
    "loyalty_training_set",
    "loyalty_model",
    "loyalty_scores",
]


def write_events(path, frame: pd.DataFrame) -> str:
    frame.to_parquet(path)
    return str(path)


def rewrite_the_future(history: pd.DataFrame, after_d: pd.Series) -> pd.DataFrame:
    """Every kind of event after D changed: for existing users views dropped, clicks doubled, carts and
    whole new sessions added, purchases re-valued and some removed; and new users arriving."""
    past, future = history[~after_d], history[after_d].copy()
    kind = future["event_name"]
    future.loc[kind == "purchase", "value"] *= 10
    keep = ~((kind == "view") & (future.index % 2 == 0)) & ~((kind == "purchase") & (future.index % 3 == 0))
    future = future[keep]
    extra_clicks = future[future["event_name"] == "click"].assign(
        event_ts=lambda f: f["event_ts"] + pd.Timedelta("1s")
    )
    extra_carts = future[future["event_name"] == "view"].iloc[::5].assign(event_name="cart")
    # A second session two hours later (sessions split after 30 idle minutes), still the same local day
    # or the next: either way after D.
    new_sessions = future.iloc[::7].assign(event_ts=lambda f: f["event_ts"] + pd.Timedelta("2h"))
    newcomers = future.assign(user_id=lambda f: "new-" + f["user_id"])
    return pd.concat([past, future, extra_clicks, extra_carts, new_sessions, newcomers], ignore_index=True)


@pytest.mark.slow
def test_changing_or_adding_events_after_d_leaves_d_unchanged(tmp_path):
    world = SyntheticWorld(start=FIRST_DAY, new_users_per_day=40.0)
    history = pd.concat(
        [generate_day(world, day, "Asia/Tokyo") for day in days(FIRST_DAY, LAST)], ignore_index=True
    )
    # "After D" is judged in local time: D ends at midnight in Tokyo, 15:00 UTC on D.
    end_of_d = day_window(D, "Asia/Tokyo")[1].replace(tzinfo=None)
    after_d = history["event_ts"] >= end_of_d
    altered = rewrite_the_future(history, after_d)
    changed_kinds = set(
        altered.merge(history, how="left", indicator=True).query("_merge == 'left_only'")["event_name"]
    )
    assert changed_kinds == {"view", "click", "cart", "purchase"}

    graphs = {}
    for name, frame in (("original", history), ("altered", altered)):
        graph = LocalGraph(tmp_path / name)
        config = config_with(raw_events={"source": write_events(tmp_path / f"{name}.parquet", frame)})
        assert graph.materialize(FIRST_DAY, LAST, run_config=config).success
        graphs[name] = graph

    original, changed = graphs["original"], graphs["altered"]
    assert original.table("loyalty_model", D)["status"].iloc[0] == "trained"
    for name in CHECKED:
        drop = ("trained_at", "model_uri") if name == "loyalty_model" else ()
        for day in days(FIRST_DAY, D):
            pd.testing.assert_frame_equal(
                original.table(name, day, drop=drop),
                changed.table(name, day, drop=drop),
                obj=f"{name}[{day}]",
            )
    # The change is real: every day after D differs.
    for after in days(D + dt.timedelta(days=1), LAST):
        assert len(changed.table("loyalty_scores", after)) > len(original.table("loyalty_scores", after))
        assert not original.table("user_features", after).equals(changed.table("user_features", after))
        assert not original.table("user_daily_activity", after).equals(
            changed.table("user_daily_activity", after)
        )
