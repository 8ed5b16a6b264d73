-- BigQuery only: one row per written day partition of each table (DuckDB keeps its own, in the
-- same transaction as the write). Written after the partition, so a logged day is always there.
CREATE TABLE IF NOT EXISTS partition_log (
  table_name STRING,
  partition_date DATE,
  row_count INT64,
  written_at TIMESTAMP
)
CLUSTER BY table_name
