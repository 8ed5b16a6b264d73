"""What every asset of the graph shares: daily partitions, single-run backfills, per-day writes."""

import datetime as dt
import functools
import inspect
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import pandas as pd
import pyarrow as pa
import pydantic
from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
    Config,
    Failure,
    MetadataValue,
    TimeWindowPartitionMapping,
    asset,
)
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from karte_assets.clients import UseCaseClient
from karte_assets.partitions import daily_partitions, partition_days
from karte_assets.resources.gcp_labels import label
from karte_assets.resources.warehouse import Warehouse
from karte_assets.settings import Settings

GROUP = "loyalty"
# An asset whose day D builds on its own day D-1 (user_profile, user_features) declares it, so that
# Dagster shows and orders the chain.
PREVIOUS_DAY = TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)

# The Config class of each asset by name, so that a run can check all of its config up front.
CONFIG_TYPES: dict[str, type[Config]] = {}


def asset_labels(context: AssetExecutionContext) -> dict[str, str]:
    """The warehouse job labels of an asset's run: which asset and run the jobs' cost belongs to."""
    return {
        "dagster_asset": label(context.asset_key.to_python_identifier()),
        "dagster_run_id": label(context.run.run_id),
    }


def daily_asset(group_name: str = GROUP, **kwargs):
    """``@asset`` for the graph: daily partitions and single-run backfills, in ``group_name``.

    Every asset reads the run's whole partition range, so a backfill of any length is one run,
    in order, oldest day first. An asset's warehouse jobs carry its ``asset_labels``.
    """

    def decorate(fn):
        parameters = inspect.signature(fn).parameters
        if "config" in parameters:
            CONFIG_TYPES[fn.__name__] = parameters["config"].annotation
        if "warehouse" in parameters:
            fn = _labelling(fn)
        return asset(
            partitions_def=daily_partitions,
            backfill_policy=BackfillPolicy.single_run(),
            group_name=group_name,
            **kwargs,
        )(fn)

    return decorate


def _labelling(fn):
    # Dagster calls an asset as fn(context, **inputs_config_and_resources) and reads the
    # parameters of fn through __wrapped__.
    @functools.wraps(fn)
    def labelled(context: AssetExecutionContext, **kwargs):
        with kwargs["warehouse"].labelled(asset_labels(context)):
            return fn(context, **kwargs)

    return labelled


def check_run(context: AssetExecutionContext) -> None:
    """Fail before writing anything if any asset's config in this run, or its range, is invalid.

    Dagster validates an asset's config only when that asset starts; without this a bad value for
    the last asset would fail the run after the first assets had already been rewritten.
    """
    problems = []
    tags = context.run.tags
    start, end = tags.get(ASSET_PARTITION_RANGE_START_TAG), tags.get(ASSET_PARTITION_RANGE_END_TAG)
    if start and end and start > end:
        problems.append(f"the partition range {start}...{end} is inverted: its start is after its end")
    problems += config_problems(context.run.run_config)
    if problems:
        raise Failure("invalid run, nothing was written:\n" + "\n".join(problems))


def config_problems(run_config: Mapping[str, Any]) -> list[str]:
    """What the assets' Config classes refuse in ``run_config`` beyond Dagster's config schema
    (bounds, rules across fields), one line per asset; the launcher checks the same before submitting."""
    problems = []
    for name, op in (run_config.get("ops") or {}).items():
        if name in CONFIG_TYPES:
            try:
                CONFIG_TYPES[name](**(op or {}).get("config", {}))
            except pydantic.ValidationError as error:
                problems.append(f"config of {name}: {error}")
    return problems


def first_partition_day() -> dt.date:
    return daily_partitions.start.date()


def clients_stream(readers: Iterable[tuple[str, Callable[[], pa.RecordBatchReader]]]) -> pa.RecordBatchReader:
    """One stream of several clients' rows with a first column ``client_id``, read one client after
    the other (nothing held in memory). Each client's reader is opened once: the first one up front
    for the stream's schema, the others as the stream reaches them."""
    readers = iter(readers)
    first_client, open_first = next(readers)
    first = open_first()
    schema = first.schema.insert(0, pa.field("client_id", pa.string()))

    def rows(client_id: str, reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
        for batch in reader:
            column = pa.array([client_id] * batch.num_rows, pa.string())
            yield pa.RecordBatch.from_arrays([column, *batch.columns], schema=schema)

    def batches() -> Iterator[pa.RecordBatch]:
        yield from rows(first_client, first)
        for client_id, open_reader in readers:
            yield from rows(client_id, open_reader())

    return pa.RecordBatchReader.from_batches(schema, batches())


def require_previous_day(
    warehouse: Warehouse, table: str, day: dt.date, clients: Sequence[UseCaseClient], settings: Settings
) -> None:
    """Fail, naming the days to backfill, unless ``table``'s day before ``day`` was written for every
    client past its first day: a state carried forward one day at a time must not silently restart."""
    previous = day - dt.timedelta(days=1)
    carried = [client for client in clients if day > client.start(settings)]
    logged = warehouse.logged_clients(table, previous, [c.client_id for c in carried])
    missing = [client for client in carried if client.client_id not in logged]
    if missing:
        raise Failure(
            f"{table} for {previous} is missing for clients "
            f"{', '.join(c.client_id for c in missing)}, and {day} builds on it: materialise the "
            f"range from the first missing day up to {day} (a client's state starts on its "
            f"first day, {', '.join(f'{c.client_id}: {c.start(settings)}' for c in missing)})"
        )


def for_each_day(
    context: AssetExecutionContext, warehouse: Warehouse, write: Callable[[dt.date], int]
) -> dict[dt.date, int]:
    """Run ``write`` for each day of the run, oldest first, logging progress; rows per day.

    Before the first day: the run's config is checked, and the warehouse is held for this run.
    """
    check_run(context)
    days = partition_days(context)
    warehouse.hold_for_run(context.run_id, context.log, days[0])
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


def for_range(
    context: AssetExecutionContext,
    warehouse: Warehouse,
    write: Callable[[list[dt.date]], dict[dt.date, int]],
) -> dict[dt.date, int]:
    """Run ``write`` once for all the days of the run (an asset whose days do not build on each
    other); rows per day. Checked and held as ``for_each_day`` does."""
    check_run(context)
    days = partition_days(context)
    warehouse.hold_for_run(context.run_id, context.log, days[0])
    started = time.perf_counter()
    rows = write(days)
    context.log.info(
        f"{context.asset_key.to_user_string()} {days[0]}..{days[-1]}: {sum(rows.values()):,} rows "
        f"({len(days)} days, {time.perf_counter() - started:.1f}s)"
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
        per_day = pd.DataFrame(
            [(day, f"{count:,}") for day, count in sorted(rows.items())], columns=["day", "rows"]
        )
        metadata["rows_per_day"] = MetadataValue.md(markdown_table(per_day))
    return metadata


def markdown_table(frame: pd.DataFrame, float_format: str = "{:.4f}") -> str:
    """A small frame as a Markdown table, for metadata the UI renders: the graph's only Markdown-table code."""

    def cell(value: object) -> str:
        text = float_format.format(value) if isinstance(value, float) else str(value)
        # A "|" in a value (a file name, a CSV delimiter in a message) would otherwise split its cell.
        return text.replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])
