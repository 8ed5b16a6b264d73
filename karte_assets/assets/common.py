"""What every asset of the graph shares: daily partitions, single-run backfills, per-day writes."""

import datetime as dt
import functools
import time
from collections.abc import Callable

import pandas as pd
from dagster import AssetExecutionContext, BackfillPolicy, MetadataValue, asset

from karte_assets.partitions import daily_partitions, partition_days

GROUP = "loyalty"

# Every asset is a daily partition whose code reads the run's whole partition range, so a
# backfill of any length is one run, in order, oldest day first.
daily_asset = functools.partial(
    asset,
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    group_name=GROUP,
)


def first_partition_day() -> dt.date:
    return daily_partitions.start.date()


def for_each_day(context: AssetExecutionContext, write: Callable[[dt.date], int]) -> dict[dt.date, int]:
    """Run ``write`` for each day of the run, oldest first, logging progress; rows per day."""
    days = partition_days(context)
    name = context.asset_key.to_user_string()
    started = time.perf_counter()
    rows: dict[dt.date, int] = {}
    for done, day in enumerate(days, start=1):
        rows[day] = write(day)
        context.log.info(
            f"{name} {day}: {rows[day]:,} rows ({done}/{len(days)} days, "
            f"{time.perf_counter() - started:.1f}s elapsed)"
        )
    return rows


def rows_metadata(rows: dict[dt.date, int]) -> dict[str, object]:
    """Row counts of a run: of its last day, in total, and per day when there are several."""
    last = max(rows)
    metadata: dict[str, object] = {
        "row_count": MetadataValue.int(rows[last]),
        "days": MetadataValue.int(len(rows)),
    }
    if len(rows) > 1:
        metadata["rows_total"] = MetadataValue.int(sum(rows.values()))
        metadata["rows_per_day"] = MetadataValue.md(
            "| day | rows |\n|---|---|\n"
            + "\n".join(f"| {day} | {count:,} |" for day, count in sorted(rows.items()))
        )
    return metadata


def markdown_table(frame: pd.DataFrame, float_format: str = "{:.4f}") -> str:
    """A small frame as a Markdown table, for metadata the UI renders."""

    def cell(value: object) -> str:
        return float_format.format(value) if isinstance(value, float) else str(value)

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])
