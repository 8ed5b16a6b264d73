-- One row per user active on the day partition_date (sql/user_daily_activity.sql writes it).
CREATE TABLE IF NOT EXISTS user_daily_activity (
  partition_date DATE,
  client_id STRING NOT NULL,
  user_id STRING,
  events INT64,
  sessions INT64,         -- a session ends after the configured gap without an event
  views INT64,
  clicks INT64,
  carts INT64,
  purchases INT64,
  revenue FLOAT64,        -- sum of purchase values
  first_event_ts TIMESTAMP,
  last_event_ts TIMESTAMP
)
PARTITION BY partition_date
CLUSTER BY client_id, user_id
