"""Google's GoogleSQL analyzer (ZetaSQL), the front end of BigQuery's SQL, for the tests.

ZetaSQL's local service is a gRPC server (``remote_server.so``, from the npm package
``@fivetrandevelopers/zetasql``; ``make zetasql`` installs it and its Python stubs under
``.karte/zetasql``). ``Analyzer.analyze`` resolves a statement against a catalog of tables and
``@parameter`` types the way BigQuery's front end does: syntax, names, types and function
signatures. The language options follow BigQuery's; see docs/googlesql.md for the differences.
"""

from __future__ import annotations

import importlib
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[1]
INSTALL_DIR = Path(os.environ.get("KARTE_ZETASQL_DIR", ROOT / ".karte" / "zetasql"))
SERVER_BINARY = INSTALL_DIR / "package" / "lib" / "zetasql" / "remote_server.so"
STUBS_DIR = INSTALL_DIR / "python"

# BigQuery's language features, named as in zetasql/public/options.proto (LanguageFeature). The set
# is the one Google's own zetasql-toolkit uses for BigQuery (GoogleCloudPlatform/zetasql-toolkit,
# zetasql-toolkit-core/.../options/BigQueryLanguageOptions.java), less FEATURE_ANONYMIZATION (an
# in-development ZetaSQL feature, not BigQuery's differential privacy syntax). Features that
# maximum_features would add and BigQuery lacks (proto types and extensions, WITH expressions,
# ORDER BY ... COLLATE, DML RETURNING, ...) stay off, so SQL using them fails here as in BigQuery.
BIGQUERY_FEATURES = (
    "FEATURE_ALLOW_MISSING_PATH_EXPRESSION_IN_ALTER_DDL",
    "FEATURE_ALTER_COLUMN_SET_DATA_TYPE",
    "FEATURE_ALTER_TABLE_RENAME_COLUMN",
    "FEATURE_ANALYTIC_FUNCTIONS",
    "FEATURE_BIGNUMERIC_TYPE",
    "FEATURE_CBRT_FUNCTIONS",
    "FEATURE_CREATE_EXTERNAL_TABLE_WITH_CONNECTION",
    "FEATURE_CREATE_EXTERNAL_TABLE_WITH_PARTITION_COLUMNS",
    "FEATURE_CREATE_EXTERNAL_TABLE_WITH_TABLE_ELEMENT_LIST",
    "FEATURE_CREATE_MATERIALIZED_VIEW_CLUSTER_BY",
    "FEATURE_CREATE_MATERIALIZED_VIEW_PARTITION_BY",
    "FEATURE_CREATE_SNAPSHOT_TABLE",
    "FEATURE_CREATE_TABLE_AS_SELECT_COLUMN_LIST",
    "FEATURE_CREATE_TABLE_CLONE",
    "FEATURE_CREATE_TABLE_CLUSTER_BY",
    "FEATURE_CREATE_TABLE_COPY",
    "FEATURE_CREATE_TABLE_FIELD_ANNOTATIONS",
    "FEATURE_CREATE_TABLE_FUNCTION",
    "FEATURE_CREATE_TABLE_LIKE",
    "FEATURE_CREATE_TABLE_NOT_NULL",
    "FEATURE_CREATE_TABLE_PARTITION_BY",
    "FEATURE_CREATE_VIEW_WITH_COLUMN_LIST",
    "FEATURE_DML_UPDATE_WITH_JOIN",
    "FEATURE_ENCRYPTION",
    "FEATURE_FOREIGN_KEYS",
    "FEATURE_GEOGRAPHY",
    "FEATURE_GROUP_BY_ROLLUP",
    "FEATURE_INTERVAL_TYPE",
    "FEATURE_INVERSE_TRIG_FUNCTIONS",
    "FEATURE_JSON_ARRAY_FUNCTIONS",
    "FEATURE_JSON_TYPE",
    "FEATURE_JSON_VALUE_EXTRACTION_FUNCTIONS",
    "FEATURE_NAMED_ARGUMENTS",
    "FEATURE_NUMERIC_TYPE",
    "FEATURE_PARAMETERIZED_TYPES",
    "FEATURE_PARAMETERS_IN_GRANTEE_LIST",
    "FEATURE_ROUND_WITH_ROUNDING_MODE",
    "FEATURE_TABLESAMPLE",
    "FEATURE_TABLE_VALUED_FUNCTIONS",
    "FEATURE_TEMPLATE_FUNCTIONS",
    "FEATURE_TIMESTAMP_NANOS",
    "FEATURE_TIME_BUCKET_FUNCTIONS",
    "FEATURE_UNENFORCED_PRIMARY_KEYS",
    "FEATURE_V_1_1_HAVING_IN_AGGREGATE",
    "FEATURE_V_1_1_LIMIT_IN_AGGREGATE",
    "FEATURE_V_1_1_NULL_HANDLING_MODIFIER_IN_AGGREGATE",
    "FEATURE_V_1_1_NULL_HANDLING_MODIFIER_IN_ANALYTIC",
    "FEATURE_V_1_1_ORDER_BY_IN_AGGREGATE",
    "FEATURE_V_1_1_SELECT_STAR_EXCEPT_REPLACE",
    "FEATURE_V_1_1_WITH_ON_SUBQUERY",
    "FEATURE_V_1_2_CIVIL_TIME",
    "FEATURE_V_1_2_SAFE_FUNCTION_CALL",
    "FEATURE_V_1_2_WEEK_WITH_WEEKDAY",
    "FEATURE_V_1_3_ADDITIONAL_STRING_FUNCTIONS",
    "FEATURE_V_1_3_ALLOW_DASHES_IN_TABLE_NAME",
    "FEATURE_V_1_3_ALLOW_REGEXP_EXTRACT_OPTIONALS",
    "FEATURE_V_1_3_ANNOTATION_FRAMEWORK",
    "FEATURE_V_1_3_CASE_STMT",
    "FEATURE_V_1_3_COLLATION_SUPPORT",
    "FEATURE_V_1_3_COLUMN_DEFAULT_VALUE",
    "FEATURE_V_1_3_CONCAT_MIXED_TYPES",
    "FEATURE_V_1_3_DATE_ARITHMETICS",
    "FEATURE_V_1_3_DATE_TIME_CONSTRUCTORS",
    "FEATURE_V_1_3_DECIMAL_ALIAS",
    "FEATURE_V_1_3_EXTENDED_DATE_TIME_SIGNATURES",
    "FEATURE_V_1_3_EXTENDED_GEOGRAPHY_PARSERS",
    "FEATURE_V_1_3_FORMAT_IN_CAST",
    "FEATURE_V_1_3_FOR_IN",
    "FEATURE_V_1_3_IS_DISTINCT",
    "FEATURE_V_1_3_LIKE_ANY_SOME_ALL",
    "FEATURE_V_1_3_NULLS_FIRST_LAST_IN_ORDER_BY",
    "FEATURE_V_1_3_OMIT_INSERT_COLUMN_LIST",
    "FEATURE_V_1_3_PIVOT",
    "FEATURE_V_1_3_QUALIFY",
    "FEATURE_V_1_3_REMOTE_FUNCTION",
    "FEATURE_V_1_3_REPEAT",
    "FEATURE_V_1_3_SCRIPT_LABEL",
    "FEATURE_V_1_3_UNNEST_AND_FLATTEN_ARRAYS",
    "FEATURE_V_1_3_UNPIVOT",
    "FEATURE_V_1_3_WITH_GROUP_ROWS",
    "FEATURE_V_1_3_WITH_RECURSIVE",
)

# The statements BigQuery runs that this project sends (queries, DDL, DML); ZetaSQL's default is
# queries only. Names as in zetasql/resolved_ast/resolved_node_kind.proto.
STATEMENT_KINDS = (
    "RESOLVED_QUERY_STMT",
    "RESOLVED_CREATE_TABLE_STMT",
    "RESOLVED_CREATE_TABLE_AS_SELECT_STMT",
    "RESOLVED_CREATE_VIEW_STMT",
    "RESOLVED_INSERT_STMT",
    "RESOLVED_UPDATE_STMT",
    "RESOLVED_DELETE_STMT",
    "RESOLVED_MERGE_STMT",
    "RESOLVED_TRUNCATE_STMT",
    "RESOLVED_DROP_STMT",
    "RESOLVED_ALTER_TABLE_STMT",
)

# QUALIFY is a reserved keyword in BigQuery
# (https://cloud.google.com/bigquery/docs/reference/standard-sql/lexical#reserved_keywords) but only
# reservable in ZetaSQL (zetasql/parser/keywords.cc).
RESERVED_KEYWORDS = ("QUALIFY",)

# The OPTIONS of BigQuery's CREATE TABLE and column definitions, with their types (None: labels, an
# ARRAY<STRUCT<STRING, STRING>> literal, is left untyped).
# https://cloud.google.com/bigquery/docs/reference/standard-sql/data-definition-language#table_option_list
# https://cloud.google.com/bigquery/docs/reference/standard-sql/data-definition-language#column_option_list
BIGQUERY_OPTIONS: dict[str, str | None] = {
    "expiration_timestamp": "TIMESTAMP",
    "partition_expiration_days": "FLOAT64",
    "require_partition_filter": "BOOL",
    "kms_key_name": "STRING",
    "friendly_name": "STRING",
    "description": "STRING",
    "labels": None,
    "default_rounding_mode": "STRING",
    "enable_change_history": "BOOL",
    "max_staleness": "INTERVAL",
    "enable_fine_grained_mutations": "BOOL",
    "storage_uri": "STRING",
    "file_format": "STRING",
    "table_format": "STRING",
    "rounding_mode": "STRING",
    "data_policies": None,
}

# BigQuery's scalar type names and ZetaSQL's TypeKind (zetasql/public/type.proto).
_SCALAR_KINDS = {
    "INT64": "TYPE_INT64",
    "FLOAT64": "TYPE_DOUBLE",
    "NUMERIC": "TYPE_NUMERIC",
    "BIGNUMERIC": "TYPE_BIGNUMERIC",
    "BOOL": "TYPE_BOOL",
    "STRING": "TYPE_STRING",
    "BYTES": "TYPE_BYTES",
    "DATE": "TYPE_DATE",
    "DATETIME": "TYPE_DATETIME",
    "TIME": "TYPE_TIME",
    "TIMESTAMP": "TYPE_TIMESTAMP",
    "INTERVAL": "TYPE_INTERVAL",
    "JSON": "TYPE_JSON",
    "GEOGRAPHY": "TYPE_GEOGRAPHY",
}
_ARRAY = re.compile(r"ARRAY\s*<\s*(.+)\s*>", re.IGNORECASE)
# ERROR_MESSAGE_ONE_LINE ends a message with its location: "... [at 3:17]".
_LOCATION = re.compile(r"\s*\[at (\d+):(\d+)\]$")


class GoogleSQLError(Exception):
    """A statement GoogleSQL refuses, with ZetaSQL's message and its 1-based line and column."""

    def __init__(self, message: str, line: int | None, column: int | None):
        super().__init__(message if line is None else f"{message} (line {line}, column {column})")
        self.message, self.line, self.column = message, line, column


class NotInstalled(RuntimeError):
    """The analyzer's server or stubs are missing."""


def _pb():
    """The generated stubs: local_service_pb2(_grpc), options, catalog and type protos."""
    if not (SERVER_BINARY.is_file() and (STUBS_DIR / "local_service_pb2_grpc.py").is_file()):
        raise NotInstalled(f"ZetaSQL is not installed under {INSTALL_DIR}: run `make zetasql`")
    if str(STUBS_DIR) not in sys.path:
        sys.path.insert(0, str(STUBS_DIR))
    names = {
        "service": "local_service_pb2",
        "grpc": "local_service_pb2_grpc",
        "options": "zetasql.proto.options_pb2",
        "catalog": "zetasql.proto.simple_catalog_pb2",
        "table": "zetasql.public.simple_table_pb2",
        "types": "zetasql.public.type_pb2",
        "language": "zetasql.public.options_pb2",
        "node_kinds": "zetasql.resolved_ast.resolved_node_kind_pb2",
    }
    return type("Stubs", (), {key: importlib.import_module(module) for key, module in names.items()})


class GoogleSQLServer:
    """ZetaSQL's local service on a free loopback port, until ``stop()``."""

    def __init__(self, startup_timeout: float = 60.0):
        self.pb = _pb()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._process = subprocess.Popen(
            [str(SERVER_BINARY), "localhost", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ready, output = threading.Event(), []

        def read() -> None:
            for line in self._process.stdout:
                output.append(line)
                if "Server listening" in line:
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(startup_timeout):
            self.stop()
            raise RuntimeError(f"ZetaSQL server did not start on port {self.port}: {''.join(output)}")
        self.channel = grpc.insecure_channel(f"localhost:{self.port}")
        self.stub = self.pb.grpc.ZetaSqlLocalServiceStub(self.channel)

    def stop(self) -> None:
        if getattr(self, "channel", None) is not None:
            self.channel.close()
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


class Analyzer:
    """``Analyze`` with BigQuery's language options against a catalog given per call."""

    def __init__(self, server: GoogleSQLServer):
        self._server = server
        pb = self._pb = server.pb
        language = pb.options.LanguageOptionsProto(
            name_resolution_mode=pb.language.NAME_RESOLUTION_DEFAULT,
            product_mode=pb.language.PRODUCT_EXTERNAL,
            enabled_language_features=[pb.language.LanguageFeature.Value(name) for name in BIGQUERY_FEATURES],
            supported_statement_kinds=[
                pb.node_kinds.ResolvedNodeKind.Value(name) for name in STATEMENT_KINDS
            ],
            reserved_keywords=RESERVED_KEYWORDS,
        )
        self.language_options = language
        # OPTIONS(...) names BigQuery knows, with their types; any other name is an error, as in
        # BigQuery (ZetaSQL accepts any name unless told otherwise).
        self._allowed_options = pb.options.AllowedHintsAndOptionsProto(
            disallow_unknown_options=True,
            option=[
                pb.options.AllowedHintsAndOptionsProto.OptionProto(
                    name=name, **({"type": type_proto(pb, kind)} if kind else {})
                )
                for name, kind in BIGQUERY_OPTIONS.items()
            ],
        )

    def analyze(
        self,
        sql: str,
        *,
        tables: Mapping[str, Mapping[str, str]],
        parameters: Mapping[str, str],
    ) -> list[tuple[str, str]]:
        """The output columns (name, BigQuery type) of a query; ``[]`` for DDL and DML."""
        statement = self._resolve(sql, tables, parameters)
        if statement.WhichOneof("node") != "resolved_query_stmt_node":
            return []
        return [
            (column.name, type_name(column.column.type))
            for column in statement.resolved_query_stmt_node.output_column_list
        ]

    def declared_table(self, ddl: str) -> tuple[str, dict[str, str]]:
        """The name and columns ({name: BigQuery type}) that a ``CREATE TABLE`` statement declares."""
        statement = self._resolve(ddl, {}, {})
        create = statement.resolved_create_statement_node.resolved_create_table_stmt_base_node
        if create.WhichOneof("node") != "resolved_create_table_stmt_node":
            raise ValueError(f"not a CREATE TABLE statement: {ddl[:80]!r}")
        table = create.resolved_create_table_stmt_node.parent
        columns = {column.name: type_name(column.type) for column in table.column_definition_list}
        return ".".join(table.parent.name_path), columns

    def _resolve(self, sql: str, tables: Mapping[str, Mapping[str, str]], parameters: Mapping[str, str]):
        pb = self._pb
        options = pb.options.AnalyzerOptionsProto(
            language_options=self.language_options,
            query_parameters=[
                pb.options.AnalyzerOptionsProto.QueryParameterProto(name=name, type=type_proto(pb, type_name))
                for name, type_name in parameters.items()
            ],
            allowed_hints_and_options=self._allowed_options,
            error_message_mode=pb.language.ERROR_MESSAGE_ONE_LINE,
        )
        request = pb.service.AnalyzeRequest(
            options=options, simple_catalog=self._catalog(tables), sql_statement=sql
        )
        try:
            return self._server.stub.Analyze(request).resolved_statement
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.INVALID_ARGUMENT:
                raise
            message = error.details()
            location = _LOCATION.search(message)
            if location is None:
                raise GoogleSQLError(message, None, None) from None
            raise GoogleSQLError(message[: location.start()], int(location[1]), int(location[2])) from None

    def _catalog(self, tables: Mapping[str, Mapping[str, str]]):
        """A catalog holding ``tables`` and the builtin functions BigQuery's options allow."""
        pb = self._pb
        root = pb.catalog.SimpleCatalogProto(
            name="karte",
            builtin_function_options=pb.options.ZetaSQLBuiltinFunctionOptionsProto(
                language_options=self.language_options
            ),
        )
        for name, columns in tables.items():
            self._register(root, name.split("."), columns)
        return root

    def _register(self, catalog, parts: list[str], columns: Mapping[str, str]) -> None:
        """Make ``a.b.c`` resolve however BigQuery lets it be quoted.

        BigQuery reads `` `a.b.c` ``, `` `a.b`.c ``, `` a.`b.c` `` and ``a.b.c`` as the same path
        (https://cloud.google.com/bigquery/docs/reference/standard-sql/lexical#table_names); ZetaSQL
        keeps a backquoted identifier whole, so every grouping of the parts gets a catalog path.
        """
        for split in range(1, len(parts) + 1):
            head = ".".join(parts[:split])
            if split == len(parts):
                catalog.table.append(self._table(head, columns))
                continue
            sub = next((sub for sub in catalog.catalog if sub.name == head), None)
            if sub is None:
                sub = catalog.catalog.add()
                sub.name = head
            self._register(sub, parts[split:], columns)

    def _table(self, name: str, columns: Mapping[str, str]):
        pb = self._pb
        return pb.table.SimpleTableProto(
            name=name,
            column=[
                pb.table.SimpleColumnProto(name=column, type=type_proto(pb, type_name))
                for column, type_name in columns.items()
            ],
        )


def type_proto(pb, bigquery_type: str):
    """ZetaSQL's TypeProto for a BigQuery type name (scalars and ARRAY<...>)."""
    name = bigquery_type.strip().upper()
    array = _ARRAY.fullmatch(name)
    if array:
        return pb.types.TypeProto(
            type_kind=pb.types.TYPE_ARRAY,
            array_type=pb.types.ArrayTypeProto(element_type=type_proto(pb, array[1])),
        )
    if name not in _SCALAR_KINDS:
        raise ValueError(f"unsupported BigQuery type {bigquery_type!r}")
    return pb.types.TypeProto(type_kind=pb.types.TypeKind.Value(_SCALAR_KINDS[name]))


def type_name(proto) -> str:
    """The BigQuery name of a ZetaSQL TypeProto."""
    kind = type(proto).DESCRIPTOR.fields_by_name["type_kind"].enum_type.values_by_number[proto.type_kind].name
    if kind == "TYPE_ARRAY":
        return f"ARRAY<{type_name(proto.array_type.element_type)}>"
    if kind == "TYPE_STRUCT":
        fields = ", ".join(
            f"{field.field_name} {type_name(field.field_type)}" for field in proto.struct_type.field
        )
        return f"STRUCT<{fields}>"
    names = {kind: name for name, kind in _SCALAR_KINDS.items()}
    if kind not in names:
        raise ValueError(f"no BigQuery name for ZetaSQL type {kind}")
    return names[kind]
