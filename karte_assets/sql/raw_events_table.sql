-- The event schema: one row per tracking event of the day partition_date (in the configured time zone).
CREATE TABLE IF NOT EXISTS raw_events (
  partition_date DATE,
  client_id STRING NOT NULL,
  user_id STRING,
  event_ts TIMESTAMP,   -- UTC
  event_name STRING,    -- view, click, cart, purchase, ...
  value FLOAT64,        -- purchase amount; 0 for other events
  properties STRING     -- the source's extra columns as a JSON object
)
PARTITION BY partition_date
CLUSTER BY client_id, user_id
