-- For the day partition_date: products whose stock on hand exceeds the 95 % upper bound of their
-- demand over the forecast horizon, the largest excess first (karte_assets/assets/demand.py writes it).
CREATE TABLE IF NOT EXISTS overstock_candidates (
  partition_date DATE,
  client_id STRING NOT NULL,
  product_id STRING,
  stock_on_hand FLOAT64,
  stock_as_of DATE,        -- the inventory's newest day on or before partition_date
  demand_forecast FLOAT64, -- forecast units over the horizon
  demand_hi_95 FLOAT64,    -- sum of the daily 95 % upper bounds over the horizon
  excess FLOAT64,          -- stock_on_hand - demand_hi_95 (> 0)
  excess_rank INT64,       -- 1 = the largest excess
  model_version STRING
)
PARTITION BY partition_date
CLUSTER BY client_id
