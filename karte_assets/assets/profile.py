import datetime as dt

from dagster import AssetDep, AssetExecutionContext, Failure, MaterializeResult, TimeWindowPartitionMapping

from karte_assets.assets.activity import user_daily_activity
from karte_assets.assets.common import daily_asset, first_partition_day, for_each_day, rows_metadata
from karte_assets.resources.warehouse import Warehouse

# user_profile[D] builds on user_profile[D-1]; declaring it lets Dagster show and order the chain.
PREVIOUS_DAY = TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)


@daily_asset(
    deps=[user_daily_activity, AssetDep("user_profile", partition_mapping=PREVIOUS_DAY)],
    kinds={"duckdb"},
)
def user_profile(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    """Lifetime state of every user seen so far (first/last seen, lifetime counts), carried forward one day at a time."""
    warehouse.ensure_table("user_profile_table")
    first_day = first_partition_day()

    def build(day: dt.date) -> int:
        previous = day - dt.timedelta(days=1)
        if day > first_day and not warehouse.partition_exists("user_profile", previous):
            raise Failure(
                f"user_profile for {previous} is missing, and {day} builds on it: materialise the "
                f"range from the first missing day up to {day} (the lifetime state starts on {first_day})"
            )
        return warehouse.replace_partition("user_profile", day, "user_profile")

    return MaterializeResult(metadata=rows_metadata(for_each_day(context, warehouse, build)))
