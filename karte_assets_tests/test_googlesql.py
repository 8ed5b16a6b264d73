"""Every SQL file as BigQuery takes it: analyzed by Google's GoogleSQL front end (ZetaSQL).

The catalog is built from the project's own DDL files (``sql/*_table.sql`` and the events table's
declared schema) and the parameter types from ``karte_assets.sql.PARAMETER_TYPES``, the ones
``bind`` enforces on the values the code passes.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from karte_assets.sql import PARAMETER_TYPES, SQL_DIR, bind, parameter_names
from karte_assets_tests.googlesql import Analyzer, GoogleSQLError

SQL_FILES = sorted(SQL_DIR.glob("*.sql"))

# The named queries whose rows replace a table's day partition (Warehouse.replace_partition calls in
# karte_assets/assets and karte_assets/export.py): table <- query.
WRITES = {
    "raw_events": "raw_events_from_table",
    "user_daily_activity": "user_daily_activity",
    "user_profile": "user_profile",
    "user_features": "user_features",
    "loyalty_training_set": "loyalty_training_set",
    "coupon_audience": "coupon_audience",
    "loyalty_raw_scores": "baseline_scores",
    "loyalty_scores": "loyalty_scores",
    "user_behaviour_features": "user_behaviour_features",
    "anomaly_exclusion_audience": "anomaly_exclusion_audience",
    "daily_demand": "daily_demand",
}


def is_ddl(path: Path) -> bool:
    return isinstance(sqlglot.parse_one(path.read_text(), read="bigquery"), exp.Create)


def declared_tables(analyzer: Analyzer, sql_dir: Path) -> dict[str, dict[str, str]]:
    """{table: {column: type}} from every CREATE TABLE file of ``sql_dir``, read by ZetaSQL itself."""
    tables = {}
    for path in sorted(sql_dir.glob("*.sql")):
        if is_ddl(path):
            name, columns = analyze_file(analyzer, path, {}, declare=True)
            tables[name] = columns
    return tables


def analyze_file(analyzer: Analyzer, path: Path, tables, declare: bool = False):
    """The file's output columns (or, with ``declare``, its table); a failure names file:line:column."""
    text = path.read_text()
    try:
        if declare:
            return analyzer.declared_table(text)
        return analyzer.analyze(text, tables=tables, parameters=PARAMETER_TYPES)
    except GoogleSQLError as error:
        line = text.splitlines()[error.line - 1] if error.line else ""
        pytest.fail(
            f"{path.name}:{error.line}:{error.column}: GoogleSQL (BigQuery) rejects it: {error.message}\n"
            f"    {line}\n    {' ' * ((error.column or 1) - 1)}^",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def catalog(googlesql) -> dict[str, dict[str, str]]:
    return declared_tables(googlesql, SQL_DIR)


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda path: path.name)
def test_every_sql_file_passes_googlesql_analysis(googlesql, catalog, path):
    analyze_file(googlesql, path, catalog)


def test_the_catalog_declares_every_table_the_sql_reads(catalog):
    # Built from the DDL files, so a table without one could only be read by a failing query.
    assert set(WRITES) | {"raw_events", "loyalty_model", "loyalty_scores", "partition_log"} <= set(catalog)
    assert "events_table" in catalog


@pytest.mark.parametrize(("table", "query"), sorted(WRITES.items()))
def test_a_query_that_writes_a_table_gives_exactly_its_declared_columns(googlesql, catalog, table, query):
    outputs = analyze_file(googlesql, SQL_DIR / f"{query}.sql", catalog)
    # A range query (Warehouse.replace_partitions) gives each row its partition_date; a day's query
    # gets it from the write.
    ranged = "first_date" in parameter_names(query)
    declared = [(name, kind) for name, kind in catalog[table].items() if ranged or name != "partition_date"]
    assert outputs == declared, f"{query}.sql writes {table}: its columns differ from {table}_table.sql"


PLANTED = {
    "reserved word as alias": (
        "SELECT snapshot_date,\n  COUNT(*) AS rows\nFROM loyalty_training_set GROUP BY snapshot_date",
        "Syntax error: Unexpected keyword ROWS",
        (2, 15),
    ),
    "postgres cast": (
        "SELECT\n  user_id::INT64 AS id\nFROM raw_events",
        'Syntax error: Expected end of input but got ":"',
        (2, 10),
    ),
    "unknown function": (
        "SELECT COUNT_IF(purchases > 0) AS buyers\nFROM user_daily_activity",
        "Function not found: COUNT_IF",
        (1, 8),
    ),
    "unknown column": (
        "SELECT user_id, revenue_365d\nFROM user_features\nWHERE partition_date = @partition_date",
        "Unrecognized name: revenue_365d",
        (1, 17),
    ),
    "DuckDB's star EXCLUDE": (
        "SELECT * EXCLUDE (partition_date) FROM user_features",
        "Syntax error: Expected end of input but got keyword EXCLUDE",
        (1, 10),
    ),
    "plural date part": (
        "SELECT DATE_ADD(@partition_date, INTERVAL 1 DAYS) AS next_day",
        "A valid date part name is required but found DAYS",
        (1, 45),
    ),
    "QUALIFY is reserved in BigQuery": ("SELECT 1 AS qualify", "Syntax error", (1, 13)),
    "parameter without a declared type": (
        "SELECT user_id FROM raw_events WHERE partition_date = @day",
        "Query parameter 'day' not found",
        (1, 55),
    ),
}


@pytest.mark.parametrize(("sql", "message", "where"), PLANTED.values(), ids=PLANTED.keys())
def test_googlesql_rejects_what_bigquery_rejects(googlesql, catalog, sql, message, where):
    with pytest.raises(GoogleSQLError) as raised:
        googlesql.analyze(sql, tables=catalog, parameters=PARAMETER_TYPES)
    assert message in raised.value.message
    assert (raised.value.line, raised.value.column) == where


def test_bigquery_syntax_the_project_relies_on_is_accepted(googlesql, catalog):
    sql = """
        SELECT * EXCEPT (partition_date), COUNTIF(purchases > 0) OVER () AS buyers,
          SAFE_DIVIDE(revenue, purchases) AS aov, DATE_DIFF(@partition_date, partition_date, DAY) AS age
        FROM `karte-proj.karte_dev`.user_daily_activity
        WHERE partition_date = @partition_date
        QUALIFY ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY events DESC) = 1
    """
    tables = {"karte-proj.karte_dev.user_daily_activity": catalog["user_daily_activity"]}
    outputs = googlesql.analyze(sql, tables=tables, parameters=PARAMETER_TYPES)
    assert outputs[-3:] == [("buyers", "INT64"), ("aov", "FLOAT64"), ("age", "INT64")]
    ddl = "CREATE TABLE IF NOT EXISTS t (d DATE) PARTITION BY d OPTIONS (partition_expiration_days = 30)"
    assert googlesql.analyze(ddl, tables={}, parameters={}) == []
    with pytest.raises(GoogleSQLError, match="Unknown option: partition_expiry_days"):
        googlesql.analyze(ddl.replace("expiration", "expiry"), tables={}, parameters={})


def test_a_planted_bad_file_fails_the_per_file_test_with_its_name_and_line(googlesql, tmp_path):
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir)
    planted = sql_dir / "planted.sql"
    planted.write_text("-- planted\nSELECT user_id,\n  COUNT(*) AS rows\nFROM raw_events GROUP BY user_id\n")
    tables = declared_tables(googlesql, sql_dir)
    for path in sorted(sql_dir.glob("*.sql")):
        if path != planted:
            analyze_file(googlesql, path, tables)
    with pytest.raises(pytest.fail.Exception) as failed:
        analyze_file(googlesql, planted, tables)
    assert "planted.sql:3:15: GoogleSQL (BigQuery) rejects it: Syntax error: Unexpected keyword ROWS" in str(
        failed.value
    )


def test_bind_refuses_a_value_of_another_type_than_declared():
    # A caller that names no clients binds the one client `default`.
    assert bind("user_profile", {"partition_date": dt.date(2026, 6, 1)}) == {
        "partition_date": dt.date(2026, 6, 1),
        "client_ids": ["default"],
    }
    with pytest.raises(TypeError, match="@partition_date is DATE, but '2026-06-01' would be sent as STRING"):
        bind("user_profile", {"partition_date": "2026-06-01"})
    with pytest.raises(TypeError, match="would be sent as TIMESTAMP"):
        bind("user_profile", {"partition_date": dt.datetime(2026, 6, 1)})
    with pytest.raises(
        TypeError, match="@event_names is ARRAY<STRING>, but .* would be sent as ARRAY<INT64>"
    ):
        bind(
            "raw_events_quality",
            {
                "first_date": dt.date(2026, 6, 1),
                "last_date": dt.date(2026, 6, 2),
                "event_names": [1],
                "timezone": "Asia/Tokyo",
            },
        )
