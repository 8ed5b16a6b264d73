import datetime as dt

import pandas as pd
from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    Config,
    MaterializeResult,
    MetadataValue,
    ResourceParam,
)
from pydantic import Field

from karte_assets.assets.checks import FEATURES_VALID, DayChecks, spec
from karte_assets.assets.common import (
    PREVIOUS_DAY,
    daily_asset,
    for_each_day,
    markdown_table,
    require_previous_day,
    rows_metadata,
)
from karte_assets.clients import ClientRegistry, grouped, run_clients
from karte_assets.partitions import partition_days
from karte_assets.resources.warehouse import Warehouse
from karte_assets.settings import current_settings

DAYS_PER_CHECK = 31


def _check_quality(
    warehouse: Warehouse, params: dict, rows: dict[dt.date, int], checks: DayChecks
) -> pd.DataFrame:
    """Record the feature check of the consecutive days of ``rows`` (rows per day), from one grouped
    query; the newest day's counts per client."""
    days = sorted(rows)
    quality = warehouse.query(
        "user_features_quality", {**params, "first_date": days[0], "last_date": days[-1]}
    )
    for day in days:
        found = quality[quality["partition_date"] == pd.Timestamp(day)].drop(columns=["partition_date"])
        bad = found[(found["null_rows"] > 0) | (found["out_of_range"] > 0)]
        checks.record(
            FEATURES_VALID,
            day,
            bad.empty,
            "; ".join(
                f"{row.client_id}: {int(row.null_rows):,} with missing values, {int(row.out_of_range):,} out of range"
                for row in bad.itertuples()
            )
            or f"{rows[day]:,} users of {len(found)} clients, all in range; "
            f"{int(found['never_purchased'].sum()):,} never purchased",
        )
    return found


class FeaturesConfig(Config):
    audience_days: int | None = Field(
        default=None,
        ge=1,
        description="The audience: only users seen in the last this many days get features, and so are "
        "trained on and scored (a day's cost then follows the recent users, not every user ever seen). "
        "Unset: every user ever seen. The 7/28/90-day windows stay exact whatever the value.",
    )


@daily_asset(
    deps=[
        AssetKey("user_profile"),
        AssetKey("user_daily_activity"),
        AssetDep("user_features", partition_mapping=PREVIOUS_DAY),
    ],
    kinds={"duckdb"},
    check_specs=[
        spec(
            FEATURES_VALID,
            "user_features",
            "No null where a feature always has a value; counts, days and windows within their ranges.",
            blocking=True,
        )
    ],
)
def user_features(
    context: AssetExecutionContext,
    config: FeaturesConfig,
    warehouse: Warehouse,
    loyalty_clients: ResourceParam[ClientRegistry],
) -> MaterializeResult:
    """Features of each client's audience (every user seen up to the day, or those of its last audience_days): 7/28/90-day windows (carried from the day before) and lifetime recency, frequency, monetary."""
    # Day D reads day D-1 of this table: on a first day it must exist, empty.
    warehouse.ensure_table("user_features_table")
    checks = DayChecks()
    settings = current_settings()
    clients = run_clients(context, loyalty_clients)
    params = {"client_ids": [client.client_id for client in clients]}
    # Clients with the same audience share one statement; 0 is the query's "every user ever seen".
    audiences = grouped(clients, lambda client: client.config(config).audience_days or 0)
    days = partition_days(context)
    # Days are checked in groups, one query each, before the snapshot retention can expire a group's oldest day.
    per_check = min(DAYS_PER_CHECK, warehouse.snapshot_retention_days)
    unchecked: dict[dt.date, int] = {}
    newest = pd.DataFrame()

    def build(day: dt.date) -> int:
        nonlocal newest
        # The days after the run's first build on days this run has just written.
        if day == days[0]:
            require_previous_day(warehouse, "user_features", day, clients, settings)
        unchecked[day] = rows = sum(
            warehouse.replace_partition(
                "user_features", day, "user_features", {"client_ids": client_ids, "audience_days": audience}
            )
            for audience, client_ids in audiences.items()
        )
        if day == days[-1] or len(unchecked) >= per_check:
            newest = _check_quality(warehouse, params, unchecked, checks)
            unchecked.clear()
        return rows

    rows = for_each_day(context, warehouse, build)
    return MaterializeResult(
        metadata={**rows_metadata(rows), "clients": MetadataValue.md(markdown_table(newest))},
        check_results=checks.results(),
    )
