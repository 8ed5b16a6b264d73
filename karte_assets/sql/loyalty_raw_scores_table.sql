-- The scoring job's output for the day partition_date: one score per user of the audience, before
-- ranking and tiers (loyalty_scores.sql ranks them in the warehouse).
CREATE TABLE IF NOT EXISTS loyalty_raw_scores (
  partition_date DATE,
  client_id STRING NOT NULL,
  user_id STRING,
  loyal_score FLOAT64
)
PARTITION BY partition_date
CLUSTER BY client_id, user_id
