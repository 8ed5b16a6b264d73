-- The coupon audience of the day partition_date for the coupon service (sql/coupon_audience.sql
-- writes it; `python -m karte_assets.export`).
CREATE TABLE IF NOT EXISTS coupon_audience (
  partition_date DATE,
  client_id STRING NOT NULL,
  user_id STRING,
  coupon_tier STRING,
  loyal_score FLOAT64,
  score_rank INT64,
  model_version STRING
)
PARTITION BY partition_date
CLUSTER BY client_id, user_id
