-- A client's newest forecaster choice before @partition_date from a backtest of the last @days days.
SELECT partition_date, model, backtest_date
FROM demand_model
WHERE client_id = @client_id AND chosen
  AND partition_date < @partition_date
  AND backtest_date > DATE_SUB(@partition_date, INTERVAL @days DAY)
ORDER BY partition_date DESC
LIMIT 1
