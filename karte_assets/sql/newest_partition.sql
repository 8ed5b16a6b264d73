-- The newest day written of @table_name for the clients @client_ids, from the small partition log:
-- reports then filter the table on that day as a parameter, which prunes its partitions (a subquery
-- filter does not:
-- https://cloud.google.com/bigquery/docs/querying-partitioned-tables#use_a_constant_filter_expression).
SELECT MAX(partition_date) AS partition_date
FROM partition_log
WHERE table_name = @table_name AND client_id IN UNNEST(@client_ids)
