"""The feature SQL: written once in BigQuery Standard SQL, transpiled with sqlglot for DuckDB.

Queries live in ``karte_assets/sql/<name>.sql`` and take values only as ``@name`` query
parameters; identifiers never come from user input. Each parameter name has one BigQuery type in
every query (``PARAMETER_TYPES``); ``bind`` refuses a value that would be sent as another type.
sqlglot is imported by the first query, not with the code location.
"""

from __future__ import annotations

import functools
from pathlib import Path

from karte_assets.clients import DEFAULT_CLIENT
from karte_assets.resources.bigquery_rows import query_parameters

SQL_DIR = Path(__file__).parent / "sql"

# The type of each query parameter, as BigQuery receives it. The tests analyze every query with
# these types (karte_assets_tests/test_googlesql.py), and bind() checks each value the code passes
# against them with the warehouse's own Python-to-BigQuery typing, so the declaration and the
# code cannot drift apart.
PARAMETER_TYPES = {
    "partition_date": "DATE",
    # The days of a range query (Warehouse.replace_partitions), both included.
    "first_date": "DATE",
    "last_date": "DATE",
    "anomaly_date": "DATE",
    "first_partition_date": "DATE",
    "last_partition_date": "DATE",
    "first_snapshot_date": "DATE",
    "last_snapshot_date": "DATE",
    "day_start": "TIMESTAMP",
    "day_end": "TIMESTAMP",
    "days": "INT64",
    "snapshot_every_days": "INT64",
    "horizon_days": "INT64",
    "audience_days": "INT64",
    "session_gap_seconds": "INT64",
    "bins": "INT64",
    "limit": "INT64",
    "row_count": "INT64",
    "table_name": "STRING",
    # An IANA time zone name: a client's local day.
    "timezone": "STRING",
    "event_names": "ARRAY<STRING>",
    "tier_a_share": "FLOAT64",
    "tier_b_share": "FLOAT64",
    "baseline_version": "STRING",
    "exclude_flagged": "BOOL",
    # The clients of a run (every query filters on them) and the one client of a per-client query.
    "client_ids": "ARRAY<STRING>",
    "client_id": "STRING",
    "product_path": "STRING",
    "quantity_path": "STRING",
    "history_start": "DATE",
}


@functools.cache
def bigquery_sql(name: str) -> str:
    path = SQL_DIR / f"{name}.sql"
    if not path.is_file():
        raise FileNotFoundError(f"no query named {name!r} (looked for {path})")
    return path.read_text()


@functools.cache
def duckdb_sql(name: str) -> str:
    return to_duckdb(bigquery_sql(name))


def to_duckdb(bigquery_text: str) -> str:
    """One BigQuery Standard SQL statement as DuckDB SQL."""
    import sqlglot
    from sqlglot import exp

    statement = sqlglot.parse_one(bigquery_text, read="bigquery")
    # DuckDB tables are not partitioned or clustered; the properties only matter to BigQuery.
    for prop in list(statement.find_all(exp.PartitionedByProperty, exp.ClusterProperty)):
        prop.pop()
    # BigQuery's COUNTIF gives INT64, DuckDB's COUNT_IF a 128-bit integer: count a CASE instead.
    for count_if in list(statement.find_all(exp.CountIf)):
        count_if.replace(exp.Count(this=exp.If(this=count_if.this.copy(), true=exp.Literal.number(1))))
    return statement.sql(dialect="duckdb", pretty=True)


@functools.cache
def parameter_names(name: str) -> frozenset[str]:
    import sqlglot
    from sqlglot import exp

    statement = sqlglot.parse_one(bigquery_sql(name), read="bigquery")
    return frozenset(parameter.name for parameter in statement.find_all(exp.Parameter))


def bind(name: str, params: dict[str, object]) -> dict[str, object]:
    """The parameters the query ``name`` uses, taken from ``params``; a missing one, or one of
    another type than ``PARAMETER_TYPES`` declares, is an error (``client_ids`` missing means the
    client ``default``)."""
    wanted = parameter_names(name)
    if "client_ids" in wanted and "client_ids" not in params:
        # A caller that names no clients is single-shop code: the one client `default`.
        params = {**params, "client_ids": [DEFAULT_CLIENT]}
    missing = wanted - params.keys()
    if missing:
        raise KeyError(f"query {name!r} needs parameters {sorted(missing)}")
    bound = {key: params[key] for key in wanted}
    for parameter in query_parameters(bound):
        declared = PARAMETER_TYPES.get(parameter.name)
        if declared is None:
            raise KeyError(f"query {name!r}: @{parameter.name} has no type in PARAMETER_TYPES")
        sent = getattr(parameter, "type_", None) or f"ARRAY<{parameter.array_type}>"
        if sent != declared:
            raise TypeError(
                f"query {name!r}: @{parameter.name} is {declared}, "
                f"but {bound[parameter.name]!r} would be sent as {sent}"
            )
    return bound
