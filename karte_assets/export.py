"""The coupon audience of a day for the coupon service.

    uv run python -m karte_assets.export --day 2026-08-29 [--client shop-a]   (or: make export DAY=2026-08-29)
    uv run python -m karte_assets.export --day 2026-08-29 --what overstock_candidates   (demand use case)

The audience is every user with a coupon tier on that day, the most loyal first (the named query
``sql/coupon_audience.sql``). It replaces the day's partition of the warehouse table
``coupon_audience``: a DuckDB table locally, a BigQuery table in the environment's dataset in
dev and prod (the same ``Warehouse`` resource as the graph's). Locally it is also written as
Parquet and CSV files under ``$KARTE_HOME/exports/``; in dev and prod only when ``--out`` is given.
An export is one client's (``--client``, default ``default``): it reads and replaces that client's
rows only, and its files are named by the client (all but ``default``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from karte_assets.clients import DEFAULT_CLIENT, checked_client_id
from karte_assets.environments import resources_for
from karte_assets.resources.warehouse import Warehouse
from karte_assets.settings import current_settings

TABLE = "coupon_audience"
OVERSTOCK = "overstock_candidates"
FORMATS = ("parquet", "csv")


class NotScored(RuntimeError):
    """The day has no loyalty scores to export."""


def export_audience(warehouse: Warehouse, day: dt.date, client_id: str = DEFAULT_CLIENT) -> pa.Table:
    """Replace ``client_id``'s rows of the day's partition of ``coupon_audience`` and return its
    audience (without the client_id column: the file is the client's)."""
    if not warehouse.partition_exists("loyalty_scores", day, client_id):
        raise NotScored(
            f"loyalty_scores has no partition {day} for client {client_id}: materialise it first, then export"
        )
    params = {"client_ids": [client_id]}
    warehouse.replace_partition(TABLE, day, TABLE, params)
    return warehouse.query_arrow(TABLE, {"partition_date": day, **params}).drop_columns(["client_id"])


def export_overstock(warehouse: Warehouse, day: dt.date, client_id: str) -> pa.Table:
    """The client's overstock candidates of the day (the demand use case), the largest excess first."""
    if not warehouse.partition_exists(OVERSTOCK, day, client_id):
        raise NotScored(
            f"{OVERSTOCK} has no partition {day} for client {client_id}: materialise it first, then export"
        )
    rows = warehouse.query_arrow(OVERSTOCK, {"client_ids": [client_id], "partition_date": day})
    return rows.drop_columns(["client_id"])


def write_files(
    audience: pa.Table,
    day: dt.date,
    directory: Path,
    formats=FORMATS,
    client_id: str = DEFAULT_CLIENT,
    name: str = TABLE,
) -> list[Path]:
    """``<name>_[<client>_]<day>.<format>`` files; each appears whole or not at all."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    name = name if client_id == DEFAULT_CLIENT else f"{name}_{client_id}"
    for file_format in formats:
        path = directory / f"{name}_{day}.{file_format}"
        partial = path.with_name(f".{path.name}.partial")
        if file_format == "parquet":
            pq.write_table(audience, partial)
        else:
            pa_csv.write_csv(audience, partial)
        os.replace(partial, path)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m karte_assets.export", description=__doc__.split("\n")[0])
    parser.add_argument("--day", required=True, type=dt.date.fromisoformat, help="the day, YYYY-MM-DD")
    parser.add_argument(
        "--out", type=Path, help="directory of the files (default locally: $KARTE_HOME/exports)"
    )
    parser.add_argument("--format", nargs="+", choices=FORMATS, default=list(FORMATS), dest="formats")
    parser.add_argument(
        "--what",
        choices=[TABLE, OVERSTOCK],
        default=TABLE,
        help="the coupon audience, or overstock candidates",
    )
    parser.add_argument("--client", default=DEFAULT_CLIENT, type=checked_client_id, help="the client shop")
    args = parser.parse_args(argv)

    settings = current_settings()
    out = args.out or (settings.home / "exports" if settings.cloud is None else None)
    if args.what == OVERSTOCK:
        try:
            rows = export_overstock(resources_for(settings)["warehouse"], args.day, args.client)
        except NotScored as error:
            parser.exit(1, f"{error}\n")
        print(f"{OVERSTOCK} {args.day} ({args.client}): {rows.num_rows:,} products")
        for path in (
            write_files(rows, args.day, out, args.formats, args.client, OVERSTOCK) if out is not None else []
        ):
            print(f"  {path}")
        return
    try:
        audience = export_audience(resources_for(settings)["warehouse"], args.day, args.client)
    except NotScored as error:
        parser.exit(1, f"{error}\n")
    tiers = audience.column("coupon_tier").value_counts().to_pylist()
    by_tier = ", ".join(
        f"tier {t['values']}: {t['counts']:,}" for t in sorted(tiers, key=lambda t: t["values"])
    )
    print(
        f"{TABLE} {args.day}: {audience.num_rows:,} users ({by_tier or 'no tiered users'}) -> table {TABLE}"
    )
    if out is not None:
        for path in write_files(audience, args.day, out, args.formats, args.client):
            print(f"  {path}")


if __name__ == "__main__":
    main()
