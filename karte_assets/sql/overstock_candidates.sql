-- A client's overstock candidates of @partition_date, the largest excess first (for export).
SELECT product_id, stock_on_hand, stock_as_of, demand_forecast, demand_hi_95, excess, excess_rank, model_version
FROM overstock_candidates
WHERE client_id = @client_id AND partition_date = @partition_date
ORDER BY excess_rank
