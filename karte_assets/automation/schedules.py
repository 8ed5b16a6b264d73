from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    build_schedule_from_partitioned_job,
    define_asset_job,
)

from karte_assets.assets.common import GROUP
from karte_assets.assets.demand import GROUP as DEMAND_GROUP
from karte_assets.partitions import daily_partitions

loyalty_daily_job = define_asset_job(
    "loyalty_daily_job",
    selection=AssetSelection.groups(GROUP),
    partitions_def=daily_partitions,
    description="Every asset of the loyalty graph for one day (or a range, as one run).",
)

demand_daily_job = define_asset_job(
    "demand_daily_job",
    selection=AssetSelection.groups(DEMAND_GROUP),
    description="Every asset of the demand use case for one day (or a range, as one run); it reads "
    "raw_events, which loyalty_daily_job materialises.",
)

# Runs at 06:00 in the partitions' time zone for the day that just ended.
daily_refresh_schedule = build_schedule_from_partitioned_job(
    loyalty_daily_job, hour_of_day=6, default_status=DefaultScheduleStatus.RUNNING
)
