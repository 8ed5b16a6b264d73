"""The anomaly use case: behaviour features in SQL on hand-built histories, the detectors on planted
bots and cheaters, flagging, labels, and the synthetic populations."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from karte_assets.anomaly.detectors import (
    ISOLATION_FOREST,
    ecod_scores,
    supervised_scores,
    tail_scores,
    unsupervised_scores,
)
from karte_assets.anomaly.features import FEATURES, feature_matrix
from karte_assets.anomaly.scoring import DetectorSettings, flag, score_client_day
from karte_assets.assets.anomaly import AnomalyConfig, ExclusionConfig, known_cheaters
from karte_assets.clients import ANOMALY, AnomalyClient, default_registry
from karte_assets.resources.warehouse import DuckDBWarehouse
from karte_assets.settings import load_settings
from karte_assets.synthetic import SyntheticWorld, generate_day, planted_user_ids

DAY = dt.date(2026, 6, 10)
T0 = pd.Timestamp("2026-06-10 03:00:00")
FEATURE_PARAMS = {"client_id": "default", "session_gap_seconds": 1800, "days": 28}


def _events(user_id: str, offsets_seconds: list[float], names=None, values=None) -> pd.DataFrame:
    n = len(offsets_seconds)
    return pd.DataFrame(
        {
            "user_id": user_id,
            "event_ts": [T0 + pd.Timedelta(seconds=s) for s in offsets_seconds],
            "event_name": names or ["view"] * n,
            "value": values or [0.0] * n,
            "properties": "{}",
        }
    )


def _activity(user_id: str, day: dt.date, events: int, purchases: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [user_id], "events": [events], "purchases": [purchases]})


@pytest.fixture
def warehouse(tmp_path) -> DuckDBWarehouse:
    warehouse = DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"))
    for ddl in ("raw_events_table", "user_daily_activity_table", "user_behaviour_features_table"):
        warehouse.ensure_table(ddl)
    return warehouse


def _features(
    warehouse: DuckDBWarehouse, events: pd.DataFrame, history: dict[dt.date, pd.DataFrame]
) -> pd.DataFrame:
    warehouse.replace_partition_with_rows("raw_events", DAY, events)
    for day, rows in history.items():
        warehouse.replace_partition_with_rows("user_daily_activity", day, rows)
    warehouse.replace_partition("user_behaviour_features", DAY, "user_behaviour_features", FEATURE_PARAMS)
    frame = warehouse.query("user_behaviour_features_of_day", {"partition_date": DAY, "client_id": "default"})
    return frame.set_index("user_id")


def test_behaviour_features_match_the_values_computed_by_hand(warehouse):
    events = pd.concat(
        [
            # A bot: a view every 30 s, five times, from 03:00:00.
            _events("bot", [0, 30, 60, 90, 120]),
            # A person: gaps of 10, 30 and 110 s, then 40 minutes of quiet (a second session), a click.
            _events("person", [0, 10, 40, 150, 150 + 2400], names=["view", "view", "cart", "view", "click"]),
            # A timer with one hiccup: gaps of 5, 5, 5 and 9 s.
            _events("timer", [0, 5, 10, 15, 24]),
            # Four events logged in one instant (a batch, a multi-item order), then one 30 s later.
            _events("batch", [0, 0, 0, 0, 30]),
            # A loop: three purchases of one amount and one of another.
            _events(
                "loop",
                [0, 60, 120, 180],
                names=["purchase"] * 4,
                values=[500.0, 500.0, 500.0, 700.0],
            ),
        ]
    )
    history = {
        DAY - dt.timedelta(days=1): pd.concat([_activity("bot", DAY, 5), _activity("person", DAY, 1)]),
        DAY - dt.timedelta(days=2): _activity("bot", DAY, 5),
        # Outside the 28-day window: not history.
        DAY - dt.timedelta(days=40): _activity("person", DAY, 1000),
    }
    f = _features(warehouse, events, history)

    bot = f.loc["bot"]
    assert bot["client_id"] == "default"
    assert (bot["events"], bot["gaps"], bot["sessions"]) == (5, 4, 1)
    assert bot["gap_cv"] == 0.0  # perfectly regular
    assert bot["modal_gap_count"] == 4 and bot["modal_gap_share"] == 1.0 and bot["regular_gaps"] == 4.0
    assert bot["mean_gap_seconds"] == 30.0 and bot["min_gap_seconds"] == 30.0
    assert bot["events_per_active_hour"] == pytest.approx(5 * 3600 / 120)
    assert bot["peak_events_per_minute"] == 2  # 03:00:00 and :30, 03:01:00 and :30, 03:02:00
    assert bot["view_share"] == 1.0 and bot["purchase_share"] == 0.0
    assert bot["history_days"] == 2 and bot["events_vs_history"] == pytest.approx((5 + 1) / (5 + 1))

    person = f.loc["person"]
    gaps = np.array([10, 30, 110, 2400])
    assert person["gap_cv"] == pytest.approx(gaps.std() / gaps.mean())
    assert person["modal_gap_count"] == 1 and person["modal_gap_share"] == 0.25
    assert person["sessions"] == 2 and person["events_per_session"] == 2.5
    assert person["mean_session_seconds"] == pytest.approx((150 + 0) / 2)
    assert person["max_session_events"] == 4
    assert (person["view_share"], person["cart_share"], person["click_share"]) == (0.6, 0.2, 0.2)
    assert person["history_days"] == 1 and person["events_vs_history"] == pytest.approx((5 + 1) / (1 + 1))

    timer = f.loc["timer"]
    assert timer["modal_gap_count"] == 3 and timer["modal_gap_share"] == 0.75
    assert timer["regular_gaps"] == pytest.approx(3 * 0.75)

    # Gaps of 0 s repeat without a timer: only the 30 s gap counts as a period.
    batch = f.loc["batch"]
    assert (
        batch["modal_gap_count"] == 1 and batch["modal_gap_share"] == 0.25 and batch["regular_gaps"] == 0.25
    )
    assert timer["gap_cv"] == pytest.approx(np.std([5, 5, 5, 9]) / np.mean([5, 5, 5, 9]))

    loop = f.loc["loop"]
    assert loop["purchases"] == 4 and loop["revenue"] == 2200.0 and loop["purchase_share"] == 1.0
    assert loop["repeated_value_share"] == pytest.approx(1 - 2 / 4)
    # No history: today is its own baseline.
    assert (
        loop["history_days"] == 0 and loop["events_vs_history"] == 1.0 and loop["purchases_vs_history"] == 1.0
    )


def test_a_single_event_has_the_neutral_regularity_and_no_null_feature(warehouse):
    f = _features(warehouse, _events("once", [0]), {})
    assert f.loc["once", "gap_cv"] == 1.0 and f.loc["once", "gaps"] == 0
    assert f.loc["once", "modal_gap_count"] == 0 and f.loc["once", "modal_gap_share"] == 0
    assert f.loc["once", "regular_gaps"] == 0
    assert np.isfinite(feature_matrix(f.reset_index())).all()


def test_feature_matrix_names_a_null_feature():
    frame = pd.DataFrame({name: [1.0, 2.0] for name in FEATURES})
    frame.loc[1, "gap_cv"] = None
    with pytest.raises(ValueError, match=r"1 users have null or infinite features: \['gap_cv'\]"):
        feature_matrix(frame)
    with pytest.raises(KeyError, match="revenue"):
        feature_matrix(frame.drop(columns=["revenue"]))


def test_tail_scores_and_ecod_by_hand():
    x = np.array([[1.0], [2.0], [2.0], [10.0]])
    left, right = tail_scores(x)
    # left: share <= x is 1/4, 3/4, 3/4, 4/4; right: share >= x is 4/4, 3/4, 3/4, 1/4.
    np.testing.assert_allclose(left[:, 0], -np.log([0.25, 0.75, 0.75, 1.0]))
    np.testing.assert_allclose(right[:, 0], -np.log([1.0, 0.75, 0.75, 0.25]))
    # One skewed feature: the larger tail of each value.
    np.testing.assert_allclose(ecod_scores(x), -np.log([0.25, 0.75, 0.75, 0.25]))
    # An unskewed feature counts both tails; a constant one counts nothing.
    even = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    np.testing.assert_allclose(ecod_scores(even), [-np.log(1 / 3), -2 * np.log(2 / 3), -np.log(1 / 3)])


def test_flag_takes_the_share_rounded_down_ties_by_order_or_a_threshold():
    scores = np.array([0.1, 0.9, 0.5, 0.9, 0.2])
    assert flag(scores, 0.4, None).tolist() == [False, True, False, True, False]
    assert flag(scores, 0.3, None).tolist() == [False, True, False, False, False]  # 1.5 -> 1; the first 0.9
    assert flag(scores, 0.0, None).sum() == 0
    assert flag(scores, 0.4, 0.5).tolist() == [False, True, True, True, False]


@pytest.fixture(scope="module")
def shop_day(tmp_path_factory) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Behaviour features of day 6 of a small synthetic shop with 30 planted bots and cheaters."""
    world = SyntheticWorld(start=dt.date(2026, 6, 1), new_users_per_day=300.0, planted_users=30)
    warehouse = DuckDBWarehouse(path=str(tmp_path_factory.mktemp("shop") / "warehouse.duckdb"))
    for ddl in ("raw_events_table", "user_daily_activity_table", "user_behaviour_features_table"):
        warehouse.ensure_table(ddl)
    for day in [world.start + dt.timedelta(days=d) for d in range(6)]:
        events = generate_day(world, day, "Asia/Tokyo")[["user_id", "event_ts", "event_name", "value"]]
        warehouse.replace_partition_with_rows("raw_events", day, events.assign(properties="{}"))
        warehouse.replace_partitions(
            "user_daily_activity", [day], "user_daily_activity", {"session_gap_seconds": 1800}
        )
    warehouse.replace_partition("user_behaviour_features", day, "user_behaviour_features", FEATURE_PARAMS)
    features = warehouse.query(
        "user_behaviour_features_of_day", {"partition_date": day, "client_id": "default"}
    )
    return features, planted_user_ids(world)


def test_the_default_detector_flags_the_planted_users(shop_day):
    features, planted = shop_day
    ids = {user for users in planted.values() for user in users}
    share = len(ids) / len(features)
    result = score_client_day(features, DetectorSettings(contamination=share), DAY)
    flagged = result.scores[result.scores["flagged"]]
    assert len(flagged) == int(share * len(features))
    # Every rate cheater and purchase loop, and the bots throttled to a person's volume, the hard
    # part (EVALUATION.md): the target is a precision of 0.9 at the flagged share.
    assert set(planted["rate"] + planted["loop"]) <= set(flagged["user_id"])
    assert flagged["user_id"].isin(planted["bot"]).sum() >= 0.8 * len(planted["bot"])
    assert flagged["user_id"].isin(ids).mean() >= 0.9
    assert result.scores.loc[~result.scores["flagged"], "reasons"].isna().all()
    bots = flagged[flagged["user_id"].str.startswith("bot-")]
    assert len(bots) and bots["reasons"].str.contains("modal_gap|gap_cv=0").all(), bots["reasons"].tolist()
    assert result.scores["model_version"].iloc[0].startswith("isolation_forest:")


def test_users_per_tree_follow_the_flagged_share_unless_set():
    # About three flagged users per tree, at least 256 (the paper's size); a set max_samples wins.
    assert DetectorSettings(contamination=0.001).users_per_tree() == 3000
    assert DetectorSettings(contamination=0.01).users_per_tree() == 300
    assert DetectorSettings(contamination=0.05).users_per_tree() == 256
    assert DetectorSettings(contamination=0.0, score_threshold=0.7).users_per_tree() == 256
    assert DetectorSettings(contamination=0.001, max_samples=512).users_per_tree() == 512


def test_the_default_sample_size_keeps_a_cluster_of_cheaters_from_hiding_each_other():
    """1 % of 20,000 users share one odd behaviour: trees of 4,096 users hold ~40 of them, who
    isolate each other slowly (masking); trees sized to the flagged share hold ~3."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20_000, 6))
    x[:200, :2] = 3.5 + 0.05 * rng.standard_normal((200, 2))
    labels = np.arange(len(x)) < 200
    settings = DetectorSettings(contamination=0.01)

    def precision(users_per_tree: int) -> float:
        scores = unsupervised_scores(ISOLATION_FOREST, x, 0, settings.n_estimators, users_per_tree)
        return labels[flag(scores, settings.contamination, None)].mean()

    assert precision(settings.users_per_tree()) >= 0.85
    assert precision(4096) < 0.7


def test_ecod_ranks_the_planted_users_high_but_flags_people_beside_them(shop_day):
    """ECOD sums each feature's rarity, so a person rare on several ordinary features ranks among the
    bots: a high ROC AUC, but not the precision of the Isolation Forest at the same share."""
    features, planted = shop_day
    ids = {user for users in planted.values() for user in users}
    labels = features["user_id"].isin(ids).to_numpy()
    scores = score_client_day(features, DetectorSettings(detector="ecod"), DAY).scores["anomaly_score"]
    assert roc_auc_score(labels, scores) > 0.95


def test_with_enough_known_cheaters_lightgbm_scores_and_every_detector_is_compared(shop_day):
    features, planted = shop_day
    labelled = set(planted["bot"] + planted["loop"])  # the rate cheaters are not known yet
    result = score_client_day(features, DetectorSettings(contamination=0.01), DAY, labelled)
    assert result.detector == "lightgbm"
    assert result.scores["model_version"].iloc[0].startswith("lightgbm:")
    assert result.comparison["detector"].tolist() == ["isolation_forest", "ecod", "lightgbm"]
    assert (result.comparison["roc_auc"] > 0.9).all(), result.comparison
    # Too few labels: unsupervised, and the note says why.
    few = score_client_day(features, DetectorSettings(), DAY, set(planted["bot"][:3]))
    assert few.detector == "isolation_forest" and "under 20" in few.note and few.comparison.empty


def test_supervised_scores_are_out_of_fold():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    labels = (np.arange(400) < 40).astype(int)
    x[labels == 1, 0] += 4  # learnable
    scores = supervised_scores(x, labels)
    assert scores[labels == 1].mean() > scores[labels == 0].mean() + 0.5
    with pytest.raises(ValueError, match="too few"):
        supervised_scores(x, (np.arange(400) < 3).astype(int))


def test_known_cheaters_file_is_read_per_client_and_bad_files_are_named(tmp_path):
    path = tmp_path / "cheaters.csv"
    path.write_text("client_id,user_id,labelled_on\ndefault,007,2026-06-09\nother,u2,2026-06-01\n")
    labels = known_cheaters(str(path), "default")
    assert labels.to_dict("records") == [{"user_id": "007", "labelled_on": dt.date(2026, 6, 9)}]
    path.write_text("user_id,when\nu1,2026-06-09\n")
    with pytest.raises(ValueError, match=r"lacks the columns \['labelled_on'\]"):
        known_cheaters(str(path), "default")
    path.write_text("user_id,labelled_on\nu1,2026-06-09\nu2,someday\n")
    with pytest.raises(ValueError, match="row 2 has no valid labelled_on"):
        known_cheaters(str(path), "default")
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        known_cheaters(str(tmp_path / "nope.csv"), "default")


def test_anomaly_config_refuses_an_unknown_detector_and_a_client_a_bad_id():
    with pytest.raises(ValueError, match="'forest' is not one of"):
        AnomalyConfig(detector="forest")
    with pytest.raises(ValueError, match="client_id 'Shop A'"):
        AnomalyClient(client_id="Shop A")


def test_planted_users_add_events_without_changing_the_shoppers():
    plain = SyntheticWorld(start=dt.date(2026, 6, 1), new_users_per_day=50.0)
    with_planted = SyntheticWorld(start=dt.date(2026, 6, 1), new_users_per_day=50.0, planted_users=9)
    day = dt.date(2026, 6, 3)
    shoppers = generate_day(plain, day, "Asia/Tokyo")
    mixed = generate_day(with_planted, day, "Asia/Tokyo")
    ids = planted_user_ids(with_planted)
    assert {kind: len(users) for kind, users in ids.items()} == {"bot": 3, "rate": 3, "loop": 3}
    planted = mixed["user_id"].isin([u for users in ids.values() for u in users])
    pd.testing.assert_frame_equal(mixed[~planted].reset_index(drop=True), shoppers)
    assert mixed["event_ts"].is_monotonic_increasing
    bot = mixed[mixed["user_id"] == ids["bot"][0]]["event_ts"].diff().dropna()
    assert bot.nunique() == 1  # machine timing
    loop = mixed[(mixed["user_id"] == ids["loop"][0]) & (mixed["event_name"] == "purchase")]
    assert len(loop) >= 3 and loop["value"].nunique() == 1


def test_an_anomaly_client_sets_its_knobs_and_a_run_config_overrides_them():
    shop = AnomalyClient(client_id="shop-a", contamination=0.05, max_samples=512, exclusion_directory="/x")
    own = shop.config(AnomalyConfig())
    assert (own.contamination, own.max_samples, own.detector) == (0.05, 512, "isolation_forest")
    assert shop.config(ExclusionConfig()).directory == "/x"
    assert shop.config(AnomalyConfig(contamination=0.2)).contamination == 0.2  # the run's value wins
    registry = default_registry(load_settings({}), [shop], ANOMALY)
    assert registry.ids() == ["default", "shop-a"] and isinstance(registry.get("default"), AnomalyClient)
    with pytest.raises(ValueError, match="detector 'forest' is not one of"):
        AnomalyClient(client_id="s", detector="forest")
