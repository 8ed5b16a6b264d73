from dagster import AssetExecutionContext, MaterializeResult

from karte_assets.assets.activity import user_daily_activity
from karte_assets.assets.common import daily_asset, for_each_day, rows_metadata
from karte_assets.assets.profile import user_profile
from karte_assets.resources.warehouse import Warehouse


@daily_asset(deps=[user_profile, user_daily_activity], kinds={"duckdb"})
def user_features(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    """Features of every user seen up to the day: 7/28/90-day windows and lifetime recency, frequency, monetary."""
    rows = for_each_day(
        context, lambda day: warehouse.replace_partition("user_features", day, "user_features")
    )
    return MaterializeResult(metadata=rows_metadata(rows))
