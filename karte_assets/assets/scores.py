import datetime as dt

import numpy as np
import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    ResourceParam,
)
from pydantic import Field, model_validator

from karte_assets.assets.checks import SCORES_DRIFT, SCORES_VALID, DayChecks, population_stability_index, spec
from karte_assets.assets.common import daily_asset, for_each_day, markdown_table, rows_metadata
from karte_assets.assets.snapshots import publish_snapshot, servable_clients
from karte_assets.clients import DEFAULT_CLIENT, ClientRegistry, grouped, run_clients
from karte_assets.partitions import partition_days
from karte_assets.plots import chart_metadata, score_change_figure, score_distribution_figure
from karte_assets.resources.model_store import ModelStore
from karte_assets.resources.trainer import ScoringJob, Trainer
from karte_assets.resources.warehouse import Warehouse
from karte_assets.tiers import NO_COUPON, tier_ranks
from karte_assets.training.loyalty import BASELINE_FEATURE
from karte_assets.training.uris import day_folder

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


def bins_by_client(warehouse: Warehouse, day: dt.date, client_ids: list[str]) -> dict[str, np.ndarray]:
    """Users per score bin of width 1/SCORE_BINS on ``day``, for each client of ``client_ids`` whose
    day was scored (one query for all of them)."""
    scored = warehouse.logged_clients("loyalty_scores", day, client_ids)
    if not scored:
        return {}
    histogram = warehouse.query(
        "score_histogram", {"partition_date": day, "bins": SCORE_BINS, "client_ids": sorted(scored)}
    )
    bins = {}
    for client_id in scored:
        mine = histogram[histogram["client_id"] == client_id]
        counts = np.zeros(SCORE_BINS, dtype=int)
        counts[mine["score_bin"].to_numpy(dtype=int)] = mine["users"].to_numpy()
        bins[client_id] = counts
    return bins


def users_per_score_bin(
    warehouse: Warehouse, day: dt.date, client_id: str = DEFAULT_CLIENT
) -> np.ndarray | None:
    """Users per score bin of one client on ``day``, or None if its day was never scored."""
    return bins_by_client(warehouse, day, [client_id]).get(client_id)


def tier_cutoffs(tiers: pd.DataFrame) -> dict[str, float]:
    """The lowest score in each coupon tier, from one client's rows of the day's ``score_tiers``."""
    given = tiers[tiers["coupon_tier"] != NO_COUPON]
    return {tier: float(score) for tier, score in zip(given["coupon_tier"], given["min_score"], strict=True)}


def _check_day(
    warehouse: Warehouse,
    day: dt.date,
    audience: dict[str, int],
    tiers: pd.DataFrame,
    configs: dict[str, ScoresConfig],
    checks: DayChecks,
    bins: dict[dt.date, dict[str, np.ndarray]],
) -> set[str]:
    """Record the day's checks; returns the clients whose scores are not valid. ``bins`` keeps the
    day's score bins for the next day's drift check (the day before is read only on a run's first day)."""
    problems, drifts, drifted, invalid_clients = [], [], False, set()
    previous = day - dt.timedelta(days=1)
    before = bins.pop(previous, None) or bins_by_client(warehouse, previous, list(configs))
    today = bins[day] = bins_by_client(warehouse, day, list(configs))
    for client_id, config in configs.items():
        mine = tiers[tiers["client_id"] == client_id]
        n = int(mine["users"].sum())
        counts = dict(zip(mine["coupon_tier"], mine["users"], strict=True))
        a_rank, b_rank = tier_ranks(n, config.tier_a_share, config.tier_b_share)
        expected = {"A": a_rank, "B": b_rank - a_rank}
        found = len(problems)
        if n != audience.get(client_id, 0):
            problems.append(f"{client_id}: {n:,} scores for an audience of {audience.get(client_id, 0):,}")
        invalid = int(mine["invalid_scores"].sum())
        if invalid:
            problems.append(f"{client_id}: {invalid:,} scores outside [0, 1]")
        for tier, count in expected.items():
            if int(counts.get(tier, 0)) != count:
                problems.append(
                    f"{client_id}: tier {tier} has {int(counts.get(tier, 0)):,} users, configured {count:,}"
                )
        if len(problems) > found:
            invalid_clients.add(client_id)
        if client_id not in before:
            drifts.append(f"{client_id}: no previous day to compare with")
            continue
        psi = population_stability_index(before[client_id], today[client_id])
        drifted |= psi > MAX_PSI
        drifts.append(f"{client_id}: PSI {psi:.3f} against the day before (warning over {MAX_PSI})")
    checks.record(
        SCORES_VALID,
        day,
        not problems,
        "; ".join(problems)
        or f"{int(tiers['users'].sum()):,} users of {len(configs)} clients scored, tiers as configured",
    )
    checks.record(SCORES_DRIFT, day, not drifted, "; ".join(drifts))
    return invalid_clients


def flagged_users_left_out(warehouse: Warehouse, day: dt.date, client_ids: list[str]) -> dict[str, int]:
    """How many scored users of ``day`` were flagged as anomalous, per client of ``client_ids``; an
    error if a client's day was never scored for anomalies (leaving nobody out would hand the
    cheaters their coupons)."""
    missing = sorted(set(client_ids) - warehouse.logged_clients("user_anomaly_scores", day, client_ids))
    if missing:
        raise Failure(
            f"loyalty_scores {day}: exclude_flagged_users is on, but user_anomaly_scores has no partition "
            f"{day} for clients {', '.join(missing)}: run anomaly_daily_job for that day first, or turn "
            "exclude_flagged_users off"
        )
    flagged = warehouse.query("flagged_scored_users", {"partition_date": day, "client_ids": client_ids})
    return {
        client_id: int(users) for client_id, users in zip(flagged["client_id"], flagged["users"], strict=True)
    }


def model_stretches(models: dict[dt.date, pd.DataFrame]) -> dict[dt.date, list[dt.date]]:
    """Each day of ``models`` (a run's days and their ``latest_model`` rows) scored by a model, to
    the stretch of consecutive days it belongs to: the days scored by the same models of the same
    clients, which one scoring job scores together."""
    stretches: dict[dt.date, list[dt.date]] = {}
    stretch, previous = [], None
    for day in sorted(models):
        uris = dict(zip(models[day]["client_id"], models[day]["model_uri"], strict=True))
        if uris and (uris != previous or day - stretch[-1] != dt.timedelta(days=1)):
            stretch = []
        if uris:
            stretch.append(day)
            stretches[day] = stretch
        previous = uris
    return stretches


class RawScores:
    """Writes ``loyalty_raw_scores`` day by day for a run: the clients with a model are scored by
    one scoring job per stretch of days with the same models (started on the stretch's first day,
    on the audience exported for all its days), the others by the baseline in the warehouse. A
    job's process or machine costs seconds to minutes to start: a backfill pays it per model."""

    def __init__(
        self,
        context: AssetExecutionContext,
        models: dict[dt.date, pd.DataFrame],
        warehouse: Warehouse,
        trainer: Trainer,
        model_store: ModelStore,
    ):
        self.context, self.models, self.warehouse = context, models, warehouse
        self.trainer, self.model_store = trainer, model_store
        self.stretches = model_stretches(models)
        self.staged: tuple[str, ScoringJob] | None = None  # the current stretch's job key and job

    def write(self, day: dt.date, client_ids: list[str]) -> int:
        """Replace ``loyalty_raw_scores`` of ``day`` for ``client_ids``; returns the users scored."""
        modelled = dict(zip(self.models[day]["client_id"], self.models[day]["model_uri"], strict=True))
        baseline = [client_id for client_id in client_ids if client_id not in modelled]
        scored = 0
        if baseline:
            scored += self.warehouse.replace_partition(
                "loyalty_raw_scores", day, "baseline_scores", {"client_ids": baseline}
            )
        if not modelled:
            return scored
        stretch = self.stretches[day]
        if day == stretch[0]:
            self.discard()
            self.staged = self._score(stretch, modelled)
        _, job = self.staged
        scored += self.warehouse.replace_partition_from_files(
            "loyalty_raw_scores", day, day_folder(job.scores_uri, day.isoformat()), clients=list(modelled)
        )
        if day == stretch[-1]:
            self.discard()
        return scored

    def _score(self, stretch: list[dt.date], modelled: dict[str, str]) -> tuple[str, ScoringJob]:
        job_key = f"{self.context.run.run_id}/scores/{stretch[0]}"
        try:
            job = ScoringJob(
                partition_dates=tuple(day.isoformat() for day in stretch),
                features_uri=self.warehouse.export_query(
                    "scoring_features",
                    {
                        "first_partition_date": stretch[0],
                        "last_partition_date": stretch[-1],
                        "client_ids": list(modelled),
                    },
                    self.model_store.staging_prefix(job_key, "audience"),
                ),
                models=modelled,
                scores_uri=self.model_store.staging_prefix(job_key, "scores"),
            )
            self.trainer.score(self.context, job)
        except BaseException:
            self.model_store.discard_staging(job_key)
            raise
        return job_key, job

    def discard(self) -> None:
        """Remove the current stretch's staged files."""
        if self.staged:
            self.model_store.discard_staging(self.staged[0])
            self.staged = None


@daily_asset(
    deps=[AssetKey("user_features"), AssetKey("loyalty_model")],
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
    loyalty_clients: ResourceParam[ClientRegistry],
    anomaly_clients: ResourceParam[ClientRegistry],
) -> MaterializeResult:
    """Loyalty score (0..1), rank, decile and coupon tier of every user of each client seen up to the day, with the newest accepted model that scored them and its day; each client's newest servable day is published as the lookup service's snapshot."""
    warehouse.ensure_table("loyalty_model_table")
    # sql/loyalty_scores.sql reads it (for exclude_flagged_users) even where the anomaly job never ran.
    warehouse.ensure_table("user_anomaly_scores_table")
    clients = run_clients(context, loyalty_clients)
    configs = {client.client_id: client.config(config) for client in clients}
    client_ids = list(configs)
    # Per client, the newest day scored by an accepted model with valid scores, and its model.
    servable: dict[str, tuple[dt.date, str]] = {}
    models: dict[dt.date, pd.DataFrame] = {}  # each day's latest_model rows
    newest_tiers: dict[str, pd.DataFrame] = {}  # the last scored day's score_tiers, for the metadata
    bins: dict[dt.date, dict[str, np.ndarray]] = {}  # the day's score bins, for the next day's drift check
    checks = DayChecks()

    # loyalty_model of every day of the run is written before this step: each day's models are
    # known up front, so the days that share them are scored by one job.
    for day in partition_days(context):
        models[day] = warehouse.query("latest_model", {"partition_date": day, "client_ids": client_ids})
    raw = RawScores(context, models, warehouse, trainer, model_store)

    def score(day: dt.date) -> int:
        raw.write(day, client_ids)
        excluding = [c for c in client_ids if configs[c].exclude_flagged_users]
        excluded = flagged_users_left_out(warehouse, day, excluding) if excluding else {}
        rows = 0
        # Clients with the same tier shares (and exclusion) share one statement.
        shares = grouped(
            clients,
            lambda c: (
                configs[c.client_id].tier_a_share,
                configs[c.client_id].tier_b_share,
                configs[c.client_id].exclude_flagged_users,
            ),
        )
        for (a_share, b_share, exclude), ids in shares.items():
            params = {
                "tier_a_share": a_share,
                "tier_b_share": b_share,
                "baseline_version": BASELINE_VERSION,
                "exclude_flagged": exclude,
                "client_ids": ids,
            }
            rows += warehouse.replace_partition("loyalty_scores", day, "loyalty_scores", params)
        tiers = newest_tiers["tiers"] = warehouse.query(
            "score_tiers", {"partition_date": day, "client_ids": client_ids}
        )
        audience = warehouse.query("audience_size", {"partition_date": day, "client_ids": client_ids})
        sizes = {
            client_id: int(users) - excluded.get(client_id, 0)
            for client_id, users in zip(audience["client_id"], audience["users"], strict=True)
        }
        invalid = _check_day(warehouse, day, sizes, tiers, configs, checks, bins)
        versions = dict(zip(models[day]["client_id"], models[day]["model_version"], strict=True))
        for client_id in servable_clients(warehouse, day, [c for c in versions if c not in invalid]):
            servable[client_id] = (day, versions[client_id])
        return rows

    try:
        rows = for_each_day(context, warehouse, score)
    finally:
        raw.discard()
    # Only each client's newest servable day: the service never goes back to an older one, so a
    # backfill's earlier days would be published only to be passed over.
    snapshots = {
        client_id: publish_snapshot(
            context, warehouse, model_store, day, version, client_id, client_id in anomaly_clients.ids()
        )
        for client_id, (day, version) in sorted(servable.items())
    }
    day, tiers = max(rows), newest_tiers["tiers"]
    by_client = {"partition_date": day, "client_ids": client_ids}
    summary = warehouse.query("score_summary", by_client)
    metadata = {
        **rows_metadata(rows),
        "clients": MetadataValue.int(len(clients)),
        "tier_counts": MetadataValue.md(
            markdown_table(summary[["client_id", "coupon_tier", "model_version", "users"]])
        ),
        "serving_snapshot": MetadataValue.md(
            markdown_table(
                pd.DataFrame(
                    [
                        (
                            client_id,
                            str(info.partition_date),
                            info.users,
                            info.model_version,
                            info.sha256[:16],
                        )
                        for client_id, info in snapshots.items()
                        if info
                    ],
                    columns=["client_id", "partition_date", "users", "model_version", "sha256"],
                )
            )
            if any(snapshots.values())
            else "none published: no day of this run had an accepted model and valid scores newer than the one served"
        ),
    }
    if len(clients) > 1:
        quantiles = warehouse.query("score_quantiles", by_client)
        metadata["score_quantiles"] = MetadataValue.md(markdown_table(quantiles))
        return MaterializeResult(metadata=metadata, check_results=checks.results())
    # One client: its model and the day it was trained, quantiles, most loyal users and charts.
    (client_id,) = client_ids
    model = models[day]
    quantiles = warehouse.query("score_quantiles", by_client).drop(columns="client_id").iloc[0]
    preview = warehouse.query("top_scores", {**by_client, "limit": 10})
    cutoffs = tier_cutoffs(tiers)
    previous_day = day - dt.timedelta(days=1)
    tier_sizes = dict(zip(tiers["coupon_tier"], tiers["users"], strict=True))
    metadata |= {
        "model_version": MetadataValue.text(
            str(model["model_version"].iloc[0]) if len(model) else BASELINE_VERSION
        ),
        "model_day": MetadataValue.text(
            str(pd.Timestamp(model["partition_date"].iloc[0]).date())
            if len(model)
            else "none: scored by the baseline"
        ),
        "score_quantiles": MetadataValue.json(
            {name: float(value) for name, value in quantiles.items() if pd.notna(value)}
        ),
        "preview": MetadataValue.md(markdown_table(preview)),
        "tier_cutoffs": MetadataValue.json(cutoffs),
        **chart_metadata(
            context.log,
            {
                "score_distribution_chart": lambda: score_distribution_figure(
                    users_per_score_bin(warehouse, day, client_id), cutoffs, tier_sizes, day
                ),
                "score_change_chart": lambda: score_change_figure(
                    users_per_score_bin(warehouse, day, client_id),
                    users_per_score_bin(warehouse, previous_day, client_id),
                    day,
                    previous_day,
                ),
            },
        ),
    }
    return MaterializeResult(metadata=metadata, check_results=checks.results())
