-- BigQuery only: record that @table_name's partition @partition_date now holds the rows of the
-- clients @client_ids (@row_count rows for them together), one log row per client.
-- Append-only: concurrent INSERTs never conflict, where MERGE/UPDATE/DELETE statements on one
-- table do (https://cloud.google.com/bigquery/docs/data-manipulation-language#dml_statement_conflicts);
-- a rewritten day adds rows, and readers take the newest.
INSERT INTO partition_log (table_name, client_id, partition_date, row_count, written_at)
SELECT @table_name, client_id, @partition_date, @row_count, CURRENT_TIMESTAMP()
FROM UNNEST(@client_ids) AS client_id
