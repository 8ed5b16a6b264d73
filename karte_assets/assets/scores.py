import datetime as dt

import lightgbm as lgb
import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue
from pydantic import Field, model_validator

from karte_assets.assets.checks import SCORES_DRIFT, SCORES_VALID, DayChecks, population_stability_index, spec
from karte_assets.assets.common import daily_asset, for_each_day, markdown_table, rows_metadata
from karte_assets.assets.features import user_features
from karte_assets.assets.training import loyalty_model
from karte_assets.plots import chart_metadata, score_change_figure, score_distribution_figure
from karte_assets.resources.model_store import ModelStore
from karte_assets.resources.warehouse import Warehouse
from karte_assets.tiers import NO_COUPON, assign_tiers
from karte_assets.training.loyalty import BASELINE_FEATURE

# Before the first model exists the audience is still ranked, by the baseline the model must beat.
BASELINE_VERSION = f"baseline:{BASELINE_FEATURE}"
SCORE_BINS = 20
MAX_PSI = 0.2


class ScoresConfig(Config):
    tier_a_share: float = Field(
        default=0.10,
        ge=0,
        le=1,
        description="Share of the day's audience (every user seen so far), the most loyal first, that gets tier A.",
    )
    tier_b_share: float = Field(
        default=0.20,
        ge=0,
        le=1,
        description="Share of the audience, next after tier A, that gets tier B; A + B is at most 1.",
    )

    @model_validator(mode="after")
    def check_shares(self):
        if self.tier_a_share + self.tier_b_share > 1:
            raise ValueError(
                f"tier_a_share + tier_b_share = {self.tier_a_share + self.tier_b_share:.2f} is over 100 % of the audience"
            )
        return self


def baseline_scores(features: pd.DataFrame) -> np.ndarray:
    """Percentile rank of recent purchase count, in (0, 1]."""
    return features[BASELINE_FEATURE].fillna(0).rank(pct=True, method="average").to_numpy()


def users_per_score_bin(warehouse: Warehouse, day: dt.date) -> np.ndarray | None:
    """Users per score bin of width 1/SCORE_BINS on ``day``, or None if the day was never scored."""
    if not warehouse.partition_exists("loyalty_scores", day):
        return None
    counts = np.zeros(SCORE_BINS, dtype=int)
    histogram = warehouse.query("score_histogram", {"partition_date": day, "bins": SCORE_BINS})
    counts[histogram["score_bin"].to_numpy(dtype=int)] = histogram["users"].to_numpy()
    return counts


def tier_cutoffs(table: pd.DataFrame) -> dict[str, float]:
    """The lowest score in each coupon tier."""
    tiers = table[table["coupon_tier"] != NO_COUPON].groupby("coupon_tier")["loyal_score"].min()
    return {tier: float(score) for tier, score in tiers.items()}


def _check_day(
    warehouse: Warehouse,
    day: dt.date,
    audience: int,
    table: pd.DataFrame,
    config: ScoresConfig,
    checks: DayChecks,
) -> None:
    n = len(table)
    tiers = table["coupon_tier"].value_counts()
    expected = {"A": int(n * config.tier_a_share)}
    expected["B"] = int(n * (config.tier_a_share + config.tier_b_share)) - expected["A"]
    problems = []
    if n != audience:
        problems.append(f"{n:,} scores for an audience of {audience:,}")
    if not table["loyal_score"].between(0, 1).all():
        problems.append(f"{int((~table['loyal_score'].between(0, 1)).sum()):,} scores outside [0, 1]")
    for tier, count in expected.items():
        if int(tiers.get(tier, 0)) != count:
            problems.append(f"tier {tier} has {int(tiers.get(tier, 0)):,} users, configured {count:,}")
    checks.record(
        SCORES_VALID, day, not problems, "; ".join(problems) or f"{n:,} users scored, tiers as configured"
    )
    previous = users_per_score_bin(warehouse, day - dt.timedelta(days=1))
    if previous is None:
        checks.record(SCORES_DRIFT, day, True, "no previous day to compare with")
        return
    psi = population_stability_index(previous, users_per_score_bin(warehouse, day))
    checks.record(
        SCORES_DRIFT, day, psi <= MAX_PSI, f"PSI {psi:.3f} against the day before (warning over {MAX_PSI})"
    )


@daily_asset(
    deps=[user_features, loyalty_model],
    kinds={"duckdb", "lightgbm"},
    check_specs=[
        spec(
            SCORES_VALID,
            "loyalty_scores",
            "One score per user of the audience, every score in [0, 1], tier sizes as configured.",
        ),
        spec(
            SCORES_DRIFT,
            "loyalty_scores",
            f"The score distribution moved little from the day before (PSI at most {MAX_PSI}).",
        ),
    ],
)
def loyalty_scores(
    context: AssetExecutionContext, config: ScoresConfig, warehouse: Warehouse, model_store: ModelStore
) -> MaterializeResult:
    """Loyalty score (0..1), rank, decile and coupon tier of every user seen up to the day, with the model version that scored them."""
    boosters: dict[str, lgb.Booster] = {}
    newest: dict[str, object] = {}
    checks = DayChecks()

    def score(day: dt.date) -> int:
        features = warehouse.query("scoring_features", {"partition_date": day})
        model = warehouse.query("latest_model", {"partition_date": day})
        if model.empty:
            version, scores = BASELINE_VERSION, baseline_scores(features)
        else:
            version = model["model_version"].iloc[0]
            if version not in boosters:
                boosters[version] = lgb.Booster(model_str=model_store.read_model(model["model_uri"].iloc[0]))
            booster = boosters[version]
            scores = booster.predict(features[booster.feature_name()]) if len(features) else np.array([])
        table = assign_tiers(features["user_id"], scores, config.tier_a_share, config.tier_b_share)
        table["model_version"] = version
        newest.update(day=day, table=table, version=version)
        rows = warehouse.replace_partition_with_rows("loyalty_scores", day, table)
        _check_day(warehouse, day, len(features), table, config, checks)
        return rows

    rows = for_each_day(context, warehouse, score)
    table: pd.DataFrame = newest["table"]
    tiers = table["coupon_tier"].value_counts().rename_axis("coupon_tier").reset_index(name="users")
    quantiles = table["loyal_score"].quantile([0.1, 0.5, 0.9]) if len(table) else pd.Series(dtype=float)
    day, cutoffs = newest["day"], tier_cutoffs(table)
    previous_day = day - dt.timedelta(days=1)
    tier_sizes = dict(zip(tiers["coupon_tier"], tiers["users"], strict=True))
    return MaterializeResult(
        metadata={
            **rows_metadata(rows),
            "model_version": MetadataValue.text(newest["version"]),
            "tier_counts": MetadataValue.md(markdown_table(tiers)),
            "score_quantiles": MetadataValue.json(
                {f"p{int(q * 100)}": float(v) for q, v in quantiles.items()}
            ),
            "preview": MetadataValue.md(markdown_table(table.head(10))),
            "tier_cutoffs": MetadataValue.json(cutoffs),
            **chart_metadata(
                context.log,
                {
                    "score_distribution_chart": lambda: score_distribution_figure(
                        users_per_score_bin(warehouse, day), cutoffs, tier_sizes, day
                    ),
                    "score_change_chart": lambda: score_change_figure(
                        users_per_score_bin(warehouse, day),
                        users_per_score_bin(warehouse, previous_day),
                        day,
                        previous_day,
                    ),
                },
            ),
        },
        check_results=checks.results(),
    )
