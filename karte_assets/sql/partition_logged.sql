-- BigQuery only: whether @table_name's partition @partition_date has been written (0 or 1 rows): the row count
-- of its newest write (BigQuery appends a row per write).
SELECT row_count
FROM partition_log
WHERE table_name = @table_name AND partition_date = @partition_date
ORDER BY written_at DESC
LIMIT 1
