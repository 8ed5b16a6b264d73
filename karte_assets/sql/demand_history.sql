-- The units sold per client of @client_ids, product and day from @history_start to @partition_date
-- (days without a sale have no row).
SELECT client_id, product_id, partition_date AS sale_date, quantity
FROM daily_demand
WHERE client_id IN UNNEST(@client_ids) AND partition_date BETWEEN @history_start AND @partition_date
