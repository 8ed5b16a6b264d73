-- The exclusion audience of the day partition_date for the ad and coupon systems: users flagged
-- as anomalous (sql/anomaly_exclusion_audience.sql writes it).
CREATE TABLE IF NOT EXISTS anomaly_exclusion_audience (
  partition_date DATE,
  client_id STRING NOT NULL,
  user_id STRING,
  anomaly_score FLOAT64,
  reasons STRING,
  model_version STRING
)
PARTITION BY partition_date
CLUSTER BY client_id, user_id
