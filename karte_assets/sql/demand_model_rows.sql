-- A client's demand_model rows of the day @partition_date.
SELECT client_id, model, chosen, mase, wrmsse, coverage_80, coverage_95, backtest_date, reason
FROM demand_model
WHERE client_id = @client_id AND partition_date = @partition_date
