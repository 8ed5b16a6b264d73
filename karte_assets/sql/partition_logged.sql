-- Which clients of @client_ids have @table_name's partition @partition_date written (DuckDB and BigQuery).
SELECT DISTINCT client_id
FROM partition_log
WHERE table_name = @table_name AND partition_date = @partition_date AND client_id IN UNNEST(@client_ids)
