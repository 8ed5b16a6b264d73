-- The overstock candidates of @partition_date of the clients @client_ids, the largest excess first
-- (for export: one client at a time).
SELECT client_id, product_id, stock_on_hand, stock_as_of, demand_forecast, demand_hi_95, excess, excess_rank, model_version
FROM overstock_candidates
WHERE client_id IN UNNEST(@client_ids) AND partition_date = @partition_date
ORDER BY client_id, excess_rank
