-- A client's units sold per product and day from @history_start to @partition_date (days without a
-- sale have no row).
SELECT product_id, partition_date AS sale_date, quantity
FROM daily_demand
WHERE client_id = @client_id AND partition_date BETWEEN @history_start AND @partition_date
