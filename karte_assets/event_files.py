"""Event files (Parquet or CSV, a path or a glob) as one DuckDB relation, each row with its file and line.

CSV files are read by their header, not by guesswork over the data: the delimiter is the one given,
or the one that splits the header line into the required columns. Each file is read by DuckDB's
CSV reader with ``store_rejects``, so a malformed line (a wrong field count, bad quoting, invalid
UTF-8) is set aside alone with its line number and every good line loads
(https://duckdb.org/docs/data/csv/reading_faulty_csv_files). Every column is read as text:
typing is the classifier's (``event_sources``), so a bad value is a reject with its reason.
"""

import csv
import glob
import gzip
import os
from dataclasses import dataclass

import duckdb

CSV_DELIMITERS = (",", ";", "\t", "|")


class EventSourceError(ValueError):
    """An event source that cannot be read as the event schema."""


@dataclass(frozen=True)
class SourceFiles:
    """What a source's files became in the connection: a relation of rows, and the malformed lines."""

    relation: str  # a relation with the source's columns plus source_file and source_line
    params: dict
    malformed: str | None = None  # a table of malformed CSV lines: source_file, source_line, reason, raw_line


def quoted(column: str) -> str:
    # Column names of a user's file become identifiers in SQL: refuse any that could escape quoting.
    if not column or '"' in column or not column.isprintable():
        raise EventSourceError(f"column name {column!r} is not usable")
    return f'"{column}"'


def source_files(source: str) -> list[str]:
    files = sorted(glob.glob(source))
    if not files:
        raise EventSourceError(f"event source {source!r} matches no file")
    kinds = {_kind(path) for path in files}
    if len(kinds) > 1:
        raise EventSourceError(f"event source {source!r} mixes Parquet and CSV files; name one kind")
    return files


def _kind(path: str) -> str:
    lowered = path.lower()
    if lowered.endswith((".parquet", ".pq")):
        return "parquet"
    if lowered.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz")):
        return "csv"
    raise EventSourceError(f"event source file {path!r} must be .parquet or .csv (optionally .csv.gz)")


def csv_header(path: str, required: tuple[str, ...], given: str | None) -> tuple[str, list[str]]:
    """The file's delimiter (the one given, or the one that splits the header into the required
    columns, else into the most fields) and its column names, from the header line alone.

    The data is never sniffed: one ragged line or stray quote can throw a sniffer into reading a
    whole file as one column.
    """
    opener = gzip.open if path.lower().endswith(".gz") else open
    with opener(path, "rb") as file:
        header = file.readline().decode("utf-8-sig", errors="replace").rstrip("\r\n")
    splits = {d: next(csv.reader([header], delimiter=d)) for d in ((given,) if given else CSV_DELIMITERS)}
    delimiter = max(splits, key=lambda d: (set(required) <= set(splits[d]), len(splits[d])))
    names = [name.strip() for name in splits[delimiter]]
    if len(set(names)) < len(names) or not all(names):
        raise EventSourceError(
            f"event file {path!r}: the header {header[:200]!r} has empty or repeated names"
        )
    return delimiter, names


def load_files(
    connection: duckdb.DuckDBPyConnection, source: str, required: tuple[str, ...], delimiter: str | None
) -> SourceFiles:
    files = source_files(source)
    if _kind(files[0]) == "parquet":
        # One scan of the glob keeps Parquet's row-group pruning on event_ts (see event_sources).
        return SourceFiles(
            "(SELECT * EXCLUDE (file_row_number), filename AS source_file, file_row_number + 1 AS source_line "
            "FROM read_parquet($path, union_by_name = true, file_row_number = true))",
            {"path": source},
        )
    return _load_csv(connection, files, required, delimiter)


def _load_csv(
    connection: duckdb.DuckDBPyConnection, files: list[str], required: tuple[str, ...], delimiter: str | None
) -> SourceFiles:
    connection.execute(
        "CREATE TEMP TABLE malformed_lines "
        "(source_file VARCHAR, source_line BIGINT, reason VARCHAR, raw_line VARCHAR, delimiter VARCHAR, ts_field INTEGER)"
    )
    selects = []
    for index, path in enumerate(files):
        if os.path.getsize(path) == 0:
            continue  # an empty file has no header and no rows: nothing to read, nothing lost
        file_delimiter, names = csv_header(path, required, delimiter)
        table = f"csv_file_{index}"
        # Rejects are kept per scan; union_by_name cannot be combined with them, so files are read one
        # by one (and their columns united by name below, whatever their order in each file).
        # The dialect and columns are given, so DuckDB's sniffer never runs; every column is text.
        read = (
            "read_csv($path, auto_detect = false, header = true, delim = $delim, quote = '\"', escape = '\"', "
            "columns = $columns, store_rejects = true, rejects_table = 'csv_reject_errors', "
            "rejects_scan = 'csv_reject_scans')"
        )
        connection.execute(
            f"CREATE TEMP TABLE {table} AS SELECT * FROM {read}",  # noqa: S608 (our own table name)
            {"path": path, "delim": file_delimiter, "columns": dict.fromkeys(names, "VARCHAR")},
        )
        scan = connection.execute("SELECT max(scan_id) FROM csv_reject_scans").fetchone()[0]
        # Where event_ts sits in a line of this file, to place a malformed line on its day if it can.
        ts_field = names.index("event_ts") + 1 if "event_ts" in names else None
        # A line may carry several errors: it is one rejected line, with its first error.
        connection.execute(
            """
            INSERT INTO malformed_lines
            SELECT $path, line, lower(arg_min(error_type, column_idx)), arg_min(trim(csv_line, e'\\r\\n'), column_idx),
              $delim, $ts_field
            FROM csv_reject_errors WHERE scan_id = $scan GROUP BY line
            """,
            {"path": path, "scan": scan, "delim": file_delimiter, "ts_field": ts_field},
        )
        # DuckDB numbers a rejected line as the record it is, the header being line 1. A good row's
        # line is its place among the file's records: rowid follows the file's order (insertion order
        # is preserved), and the lines rejected before it are counted in.
        selects.append(
            f"""
            SELECT *, $file_{index} AS source_file,
              rowid + 2 + (
                SELECT count(*) FROM (
                  SELECT source_line - ROW_NUMBER() OVER (ORDER BY source_line) + 1 AS shifted
                  FROM malformed_lines WHERE source_file = $file_{index}
                ) WHERE shifted <= {table}.rowid + 2
              ) AS source_line
            FROM {table}
            """  # noqa: S608
        )
    params = {f"file_{index}": path for index, path in enumerate(files)}
    if not selects:
        empty = ", ".join(f"CAST(NULL AS VARCHAR) AS {quoted(column)}" for column in required)
        return SourceFiles(
            f"(SELECT {empty}, CAST(NULL AS VARCHAR) AS source_file, CAST(NULL AS BIGINT) AS source_line LIMIT 0)",
            {},
            "malformed_lines",
        )
    used = {name: value for name, value in params.items() if f"${name}" in "".join(selects)}
    return SourceFiles("(" + " UNION ALL BY NAME ".join(selects) + ")", used, "malformed_lines")
