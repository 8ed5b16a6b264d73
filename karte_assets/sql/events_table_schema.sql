-- The schema this project expects of the existing events table (KARTE_BQ_EVENTS_TABLE,
-- docs/google-cloud.md), under its placeholder name in sql/raw_events_from_table.sql. Never run:
-- the table is not ours. The tests analyze raw_events_from_table.sql against it.
CREATE TABLE IF NOT EXISTS events_table (
  user_id STRING,
  event_ts TIMESTAMP,     -- UTC; the table is partitioned by its day
  event_name STRING,      -- view, click, cart, purchase, ...
  value FLOAT64,          -- purchase amount; NULL or 0 for other events
  properties STRING       -- extra attributes as a JSON object; nullable
)
PARTITION BY DATE(event_ts)
