-- The forecaster chosen for a client on the day partition_date, and the backtest behind the choice:
-- one row per candidate forecaster (karte_assets/assets/demand.py writes it).
CREATE TABLE IF NOT EXISTS demand_model (
  partition_date DATE,
  client_id STRING NOT NULL,
  model STRING,            -- lightgbm, seasonal_naive, auto_ets
  chosen BOOL,             -- the one with the lowest MASE: it forecasts
  mase FLOAT64,            -- means over the backtest's rolling windows
  wrmsse FLOAT64,
  coverage_80 FLOAT64,     -- share of actual days inside the 80 % interval
  coverage_95 FLOAT64,
  backtest_date DATE,      -- the day the backtest ran; later days reuse it until it is due again
  reason STRING
)
PARTITION BY partition_date
CLUSTER BY client_id
