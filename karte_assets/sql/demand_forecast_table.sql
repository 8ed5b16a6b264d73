-- For the day partition_date: each product's forecast for each of the next H days, with 80 % and
-- 95 % intervals (karte_assets/assets/demand.py writes it).
CREATE TABLE IF NOT EXISTS demand_forecast (
  partition_date DATE,
  client_id STRING NOT NULL,
  product_id STRING,
  forecast_date DATE,
  forecast FLOAT64,        -- expected units sold on forecast_date
  lo_80 FLOAT64,
  hi_80 FLOAT64,
  lo_95 FLOAT64,
  hi_95 FLOAT64,
  model_version STRING     -- <model>@<day it was chosen>
)
PARTITION BY partition_date
CLUSTER BY client_id, product_id
