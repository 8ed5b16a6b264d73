-- Per client of @client_ids: its newest forecaster choice before @partition_date from a backtest of
-- the last @days days (a client without one has no row).
SELECT client_id, partition_date, model, backtest_date
FROM demand_model
WHERE client_id IN UNNEST(@client_ids) AND chosen
  AND partition_date < @partition_date
  AND backtest_date > DATE_SUB(@partition_date, INTERVAL @days DAY)
QUALIFY ROW_NUMBER() OVER (PARTITION BY client_id ORDER BY partition_date DESC) = 1
