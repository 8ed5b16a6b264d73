-- The demand_model rows of the day @partition_date of the clients @client_ids.
SELECT client_id, model, chosen, mase, wrmsse, coverage_80, coverage_95, backtest_date, reason
FROM demand_model
WHERE client_id IN UNNEST(@client_ids) AND partition_date = @partition_date
ORDER BY client_id, model
