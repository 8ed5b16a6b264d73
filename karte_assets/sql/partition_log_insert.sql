-- BigQuery only: record that @table_name's partition @partition_date now holds @row_count rows.
-- Append-only: concurrent INSERTs never conflict, where MERGE/UPDATE/DELETE statements on one
-- table do (https://cloud.google.com/bigquery/docs/data-manipulation-language#dml_statement_conflicts);
-- a rewritten day adds a row, and readers take the newest.
INSERT INTO partition_log (table_name, partition_date, row_count, written_at)
VALUES (@table_name, @partition_date, @row_count, CURRENT_TIMESTAMP())
