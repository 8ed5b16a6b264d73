-- The anomaly score of every user active on the day partition_date, per client
-- (karte_assets/assets/anomaly.py writes it from the detector's scores).
CREATE TABLE IF NOT EXISTS user_anomaly_scores (
  partition_date DATE,
  client_id STRING NOT NULL,
  user_id STRING,
  anomaly_score FLOAT64,   -- higher is more anomalous; comparable within one day and model_version
  flagged BOOL,            -- in the client's contamination share, or over its score threshold
  reasons STRING,          -- the features that drove the score, rarest first: "name=value; ..."
  model_version STRING     -- detector, its settings and the day it was fitted on
)
PARTITION BY partition_date
CLUSTER BY client_id, user_id
