import datetime as dt

from dagster import AssetExecutionContext, MaterializeResult

from karte_assets.assets.activity import user_daily_activity
from karte_assets.assets.checks import FEATURES_VALID, DayChecks, spec
from karte_assets.assets.common import daily_asset, for_each_day, rows_metadata
from karte_assets.assets.profile import user_profile
from karte_assets.resources.warehouse import Warehouse


@daily_asset(
    deps=[user_profile, user_daily_activity],
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
def user_features(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    """Features of every user seen up to the day: 7/28/90-day windows and lifetime recency, frequency, monetary."""
    checks = DayChecks()

    def build(day: dt.date) -> int:
        rows = warehouse.replace_partition("user_features", day, "user_features")
        quality = warehouse.query("user_features_quality", {"partition_date": day}).iloc[0]
        nulls, out_of_range = int(quality["null_rows"]), int(quality["out_of_range"])
        checks.record(
            FEATURES_VALID,
            day,
            nulls == 0 and out_of_range == 0,
            f"{rows:,} users: {nulls:,} with missing values, {out_of_range:,} out of range; "
            f"{int(quality['never_purchased']):,} never purchased",
        )
        return rows

    rows = for_each_day(context, warehouse, build)
    return MaterializeResult(metadata=rows_metadata(rows), check_results=checks.results())
