"""Python values as BigQuery query parameters, and Arrow rows shaped for a BigQuery load."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import pyarrow as pa
from google.cloud import bigquery

# Checked in order: bool is an int, datetime is a date.
_PARAMETER_TYPES = (
    (bool, "BOOL"),
    (int, "INT64"),
    (float, "FLOAT64"),
    (str, "STRING"),
    (dt.datetime, "TIMESTAMP"),
    (dt.date, "DATE"),
)
_ARROW_TYPES = {
    "STRING": pa.string(),
    "INTEGER": pa.int64(),
    "INT64": pa.int64(),
    "FLOAT": pa.float64(),
    "FLOAT64": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "BOOL": pa.bool_(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
}


def _type_of(name: str, value: object) -> str:
    kind = next((kind for python, kind in _PARAMETER_TYPES if isinstance(value, python)), None)
    if kind is None:
        raise TypeError(f"query parameter @{name}={value!r}: no BigQuery type for {type(value).__name__}")
    return kind


def query_parameters(
    params: Mapping[str, object],
) -> list[bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter]:
    """Typed parameters; a list becomes an ARRAY of its elements' type (STRING when empty)."""
    typed = []
    for name, value in sorted(params.items()):
        if isinstance(value, list | tuple):
            kinds = {_type_of(name, element) for element in value} or {"STRING"}
            if len(kinds) > 1:
                raise TypeError(f"query parameter @{name}={value!r}: elements of several types")
            typed.append(bigquery.ArrayQueryParameter(name, kinds.pop(), list(value)))
        else:
            typed.append(bigquery.ScalarQueryParameter(name, _type_of(name, value), value))
    return typed


def conform(table: pa.Table, schema: Sequence[bigquery.SchemaField]) -> pa.Table:
    """``table`` with naive timestamps as UTC, and the columns of an existing table's ``schema``
    cast to its types (a column of Nones has no type of its own) or added as nulls if absent."""
    for index, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz is None:
            table = table.set_column(
                index, field.name, table.column(index).cast(pa.timestamp("us", tz="UTC"))
            )
    for field in schema:
        arrow_type = _ARROW_TYPES.get(field.field_type)
        if arrow_type is None:
            continue
        if field.name in table.column_names:
            index = table.column_names.index(field.name)
            table = table.set_column(index, field.name, table.column(index).cast(arrow_type))
        else:
            table = table.append_column(field.name, pa.nulls(table.num_rows, arrow_type))
    return table
