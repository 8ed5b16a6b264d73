-- BigQuery only: one row per write of a day partition of a table, per client of the write, appended (DuckDB keeps its own
-- log, in the same transaction as the write). Written after the partition, so a logged day is
-- always there. Partitioned by the day written and clustered by table, so that a lookup of one
-- table's day reads one partition's block of that table.
CREATE TABLE IF NOT EXISTS partition_log (
  table_name STRING,
  client_id STRING NOT NULL,
  partition_date DATE,
  row_count INT64,
  written_at TIMESTAMP
)
PARTITION BY partition_date
CLUSTER BY table_name, client_id
