-- The model registry: one row per day, the model trained for it or why none was.
CREATE TABLE IF NOT EXISTS loyalty_model (
  partition_date DATE,
  client_id STRING NOT NULL,
  status STRING,          -- trained; rejected (never scores); skipped (no trainable data) or not_due
                          -- (the retrain cadence kept the current model); the reason in note
  note STRING,
  model_version STRING,
  model_uri STRING,
  validation_auc FLOAT64,
  baseline_auc FLOAT64,
  train_rows INT64,
  validation_rows INT64,
  best_iteration INT64,
  trained_at TIMESTAMP
)
PARTITION BY partition_date
CLUSTER BY client_id
