-- Labelled snapshots for the model of the day partition_date: one row per user and snapshot day
-- (sql/loyalty_training_set.sql writes it).
CREATE TABLE IF NOT EXISTS loyalty_training_set (
  partition_date DATE,
  client_id STRING NOT NULL,
  snapshot_date DATE,
  user_id STRING,
  horizon_days INT64,
  label INT64             -- 1 if the user purchased in (snapshot_date, snapshot_date + horizon_days]
)
PARTITION BY partition_date
CLUSTER BY client_id, user_id
