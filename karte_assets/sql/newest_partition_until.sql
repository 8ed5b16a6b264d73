-- The newest day on or before @partition_date written of @table_name for the clients @client_ids
-- (NULL if none), from the small partition log (see newest_partition.sql).
SELECT MAX(partition_date) AS partition_date
FROM partition_log
WHERE table_name = @table_name AND client_id IN UNNEST(@client_ids) AND partition_date <= @partition_date
