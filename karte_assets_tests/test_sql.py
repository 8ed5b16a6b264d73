"""The feature SQL: BigQuery Standard SQL with @parameters, transpiled for DuckDB."""

import datetime as dt

import pytest
import sqlglot

from karte_assets.sql import SQL_DIR, bigquery_sql, bind, duckdb_sql, parameter_names

QUERIES = sorted(path.stem for path in SQL_DIR.glob("*.sql"))


@pytest.mark.parametrize("name", QUERIES)
def test_every_query_parses_as_bigquery_and_transpiles_to_duckdb(name):
    sqlglot.parse_one(bigquery_sql(name), read="bigquery", error_level=sqlglot.ErrorLevel.RAISE)
    sqlglot.parse_one(duckdb_sql(name), read="duckdb", error_level=sqlglot.ErrorLevel.RAISE)


@pytest.mark.parametrize("name", QUERIES)
def test_values_enter_only_as_parameters(name):
    text = bigquery_sql(name)
    assert "{" not in text and "%s" not in text, "no templating in SQL files"
    assert all(f"${param}" in duckdb_sql(name) for param in parameter_names(name))


def test_countif_is_counted_as_a_64_bit_integer_in_duckdb():
    assert "COUNT_IF" not in duckdb_sql("user_daily_activity")


def test_bind_keeps_the_used_parameters_and_names_the_missing_ones():
    day = dt.date(2026, 6, 1)
    # A caller that names no clients is single-shop code: the client default (CLIENTS.md).
    assert bind("user_profile", {"partition_date": day, "unused": 1}) == {
        "partition_date": day,
        "client_ids": ["default"],
    }
    with pytest.raises(KeyError, match="session_gap_seconds"):
        bind("user_daily_activity", {"partition_date": day})


def test_an_unknown_query_name_is_refused():
    with pytest.raises(FileNotFoundError, match="no query named 'nope'"):
        bigquery_sql("nope")
