-- Which clients of @client_ids have @table_name's partition @partition_date written, with the row
-- count of each one's newest write (BigQuery appends a row per write; DuckDB keeps one).
SELECT * EXCEPT (newest)
FROM (
  SELECT
    client_id,
    row_count,
    ROW_NUMBER() OVER (PARTITION BY client_id ORDER BY written_at DESC) AS newest
  FROM partition_log
  WHERE table_name = @table_name AND partition_date = @partition_date AND client_id IN UNNEST(@client_ids)
)
WHERE newest = 1
