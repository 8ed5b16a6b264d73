import datetime as dt

import pandas as pd
from dagster import AssetDep, AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, ResourceParam

from karte_assets.assets.checks import FEATURES_VALID, DayChecks, spec
from karte_assets.assets.common import (
    PREVIOUS_DAY,
    daily_asset,
    for_each_day,
    markdown_table,
    require_previous_day,
    rows_metadata,
)
from karte_assets.clients import ClientRegistry, run_clients
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
    context: AssetExecutionContext, warehouse: Warehouse, loyalty_clients: ResourceParam[ClientRegistry]
) -> MaterializeResult:
    """Features of every user of each client seen up to the day: 7/28/90-day windows (carried from the day before) and lifetime recency, frequency, monetary."""
    # Day D reads day D-1 of this table: on a first day it must exist, empty.
    warehouse.ensure_table("user_features_table")
    checks = DayChecks()
    settings = current_settings()
    clients = run_clients(context, loyalty_clients)
    params = {"client_ids": [client.client_id for client in clients]}
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
        unchecked[day] = rows = warehouse.replace_partition("user_features", day, "user_features", params)
        if day == days[-1] or len(unchecked) >= per_check:
            newest = _check_quality(warehouse, params, unchecked, checks)
            unchecked.clear()
        return rows

    rows = for_each_day(context, warehouse, build)
    return MaterializeResult(
        metadata={**rows_metadata(rows), "clients": MetadataValue.md(markdown_table(newest))},
        check_results=checks.results(),
    )
