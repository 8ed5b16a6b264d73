import datetime as dt

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, Config, Failure, MaterializeResult, MetadataValue
from pydantic import Field, model_validator

from karte_assets.assets.checks import SCORES_DRIFT, SCORES_VALID, DayChecks, population_stability_index, spec
from karte_assets.assets.common import daily_asset, for_each_day, markdown_table, rows_metadata
from karte_assets.assets.features import user_features
from karte_assets.assets.snapshots import publish_snapshot, servable_model
from karte_assets.assets.training import loyalty_model
from karte_assets.plots import chart_metadata, score_change_figure, score_distribution_figure
from karte_assets.resources.model_store import ModelStore
from karte_assets.resources.trainer import ScoringJob, Trainer
from karte_assets.resources.warehouse import Warehouse
from karte_assets.tiers import NO_COUPON, tier_ranks
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
    exclude_flagged_users: bool = Field(
        default=False,
        description="Leave out the users flagged as anomalous that day (user_anomaly_scores, from "
        "anomaly_daily_job, which must have run for the day): no score, no tier, not in the audience.",
    )

    @model_validator(mode="after")
    def check_shares(self):
        if self.tier_a_share + self.tier_b_share > 1:
            raise ValueError(
                f"tier_a_share + tier_b_share = {self.tier_a_share + self.tier_b_share:.2f} is over 100 % of the audience"
            )
        return self


def users_per_score_bin(warehouse: Warehouse, day: dt.date) -> np.ndarray | None:
    """Users per score bin of width 1/SCORE_BINS on ``day``, or None if the day was never scored."""
    if not warehouse.partition_exists("loyalty_scores", day):
        return None
    counts = np.zeros(SCORE_BINS, dtype=int)
    histogram = warehouse.query("score_histogram", {"partition_date": day, "bins": SCORE_BINS})
    counts[histogram["score_bin"].to_numpy(dtype=int)] = histogram["users"].to_numpy()
    return counts


def tier_cutoffs(tiers: pd.DataFrame) -> dict[str, float]:
    """The lowest score in each coupon tier, from the day's ``score_tiers`` summary."""
    given = tiers[tiers["coupon_tier"] != NO_COUPON]
    return {tier: float(score) for tier, score in zip(given["coupon_tier"], given["min_score"], strict=True)}


def _check_day(
    warehouse: Warehouse,
    day: dt.date,
    audience: int,
    tiers: pd.DataFrame,
    config: ScoresConfig,
    checks: DayChecks,
) -> None:
    n = int(tiers["users"].sum())
    counts = dict(zip(tiers["coupon_tier"], tiers["users"], strict=True))
    expected = {"A": int(n * config.tier_a_share)}
    expected["B"] = int(n * (config.tier_a_share + config.tier_b_share)) - expected["A"]
    problems = []
    if n != audience:
        problems.append(f"{n:,} scores for an audience of {audience:,}")
    invalid = int(tiers["invalid_scores"].sum())
    if invalid:
        problems.append(f"{invalid:,} scores outside [0, 1]")
    for tier, count in expected.items():
        if int(counts.get(tier, 0)) != count:
            problems.append(f"tier {tier} has {int(counts.get(tier, 0)):,} users, configured {count:,}")
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


def flagged_users_left_out(warehouse: Warehouse, day: dt.date) -> int:
    """How many scored users of ``day`` were flagged as anomalous; an error if the day was never scored
    for anomalies (leaving nobody out would hand the cheaters their coupons)."""
    if not warehouse.partition_exists("user_anomaly_scores", day):
        raise Failure(
            f"loyalty_scores {day}: exclude_flagged_users is on, but user_anomaly_scores has no partition "
            f"{day}: run anomaly_daily_job for that day first, or turn exclude_flagged_users off"
        )
    return int(warehouse.query("flagged_scored_users", {"partition_date": day})["users"].iloc[0])


def raw_scores(
    context: AssetExecutionContext,
    day: dt.date,
    model: pd.DataFrame,
    warehouse: Warehouse,
    trainer: Trainer,
    model_store: ModelStore,
) -> int:
    """Replace ``loyalty_raw_scores`` of ``day``: the model's scores, computed by a scoring job on
    the exported audience, or the baseline's, computed in the warehouse; returns the users scored."""
    if model.empty:
        return warehouse.replace_partition("loyalty_raw_scores", day, "baseline_scores")
    job_key = f"{context.run_id}/scores/{day}"
    try:
        job = ScoringJob(
            partition_date=day.isoformat(),
            features_uri=warehouse.export_query(
                "scoring_features", {"partition_date": day}, model_store.staging_prefix(job_key, "audience")
            ),
            model_uri=model["model_uri"].iloc[0],
            scores_uri=model_store.staging_prefix(job_key, "scores"),
        )
        trainer.score(context, job)
        return warehouse.replace_partition_from_files("loyalty_raw_scores", day, job.scores_uri)
    finally:
        model_store.discard_staging(job_key)


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
    context: AssetExecutionContext,
    config: ScoresConfig,
    warehouse: Warehouse,
    trainer: Trainer,
    model_store: ModelStore,
) -> MaterializeResult:
    """Loyalty score (0..1), rank, decile and coupon tier of every user seen up to the day, with the newest accepted model that scored them and its day; the newest servable day is published as the lookup service's snapshot."""
    # sql/loyalty_scores.sql reads it (for exclude_flagged_users) even where the anomaly job never ran.
    warehouse.ensure_table("user_anomaly_scores_table")
    versions: dict[dt.date, str] = {}
    servable: list[dt.date] = []  # days scored by an accepted model whose scores passed their check
    model_days: dict[dt.date, dt.date | None] = {}  # the day each day's model was trained
    newest_tiers: dict[str, pd.DataFrame] = {}  # the last scored day's score_tiers, for the metadata
    checks = DayChecks()

    def score(day: dt.date) -> int:
        model = warehouse.query("latest_model", {"partition_date": day})
        versions[day] = BASELINE_VERSION if model.empty else model["model_version"].iloc[0]
        model_days[day] = None if model.empty else pd.Timestamp(model["partition_date"].iloc[0]).date()
        scored = raw_scores(context, day, model, warehouse, trainer, model_store)
        excluded = flagged_users_left_out(warehouse, day) if config.exclude_flagged_users else 0
        a_rank, b_rank = tier_ranks(scored - excluded, config.tier_a_share, config.tier_b_share)
        params = {
            "audience": max(scored - excluded, 1),
            "tier_a_rank": a_rank,
            "tier_b_rank": b_rank,
            "model_version": versions[day],
            "exclude_flagged": config.exclude_flagged_users,
        }
        rows = warehouse.replace_partition("loyalty_scores", day, "loyalty_scores", params)
        tiers = newest_tiers["tiers"] = warehouse.query("score_tiers", {"partition_date": day})
        audience = int(warehouse.query("audience_size", {"partition_date": day})["users"].iloc[0]) - excluded
        _check_day(warehouse, day, audience, tiers, config, checks)
        if checks.passed(SCORES_VALID, day) and model_days[day] and servable_model(warehouse, day):
            servable.append(day)
        return rows

    rows = for_each_day(context, warehouse, score)
    # Only the newest servable day: the service never goes back to an older one, so a backfill's
    # earlier days would be published only to be passed over.
    snapshot = servable and publish_snapshot(
        context, warehouse, model_store, servable[-1], versions[servable[-1]]
    )
    day, tiers = max(versions), newest_tiers["tiers"]
    quantiles = warehouse.query("score_quantiles", {"partition_date": day}).iloc[0]
    preview = warehouse.query("top_scores", {"partition_date": day, "limit": 10})
    cutoffs = tier_cutoffs(tiers)
    previous_day = day - dt.timedelta(days=1)
    tier_sizes = dict(zip(tiers["coupon_tier"], tiers["users"], strict=True))
    return MaterializeResult(
        metadata={
            **rows_metadata(rows),
            "model_version": MetadataValue.text(versions[day]),
            "serving_snapshot": MetadataValue.text(
                f"{snapshot.partition_date}: {snapshot.users:,} users, {snapshot.model_version}, sha256 {snapshot.sha256[:16]}"
                if snapshot
                else "none published: no day of this run had an accepted model and valid scores newer than the one served"
            ),
            "model_day": MetadataValue.text(str(model_days[day] or "none: scored by the baseline")),
            "tier_counts": MetadataValue.md(markdown_table(tiers[["coupon_tier", "users"]])),
            "score_quantiles": MetadataValue.json(
                {name: float(value) for name, value in quantiles.items() if pd.notna(value)}
            ),
            "preview": MetadataValue.md(markdown_table(preview)),
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
