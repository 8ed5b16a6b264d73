-- Rows of a source that could not be used for the day partition_date, as they came, with the reason.
CREATE TABLE IF NOT EXISTS raw_event_rejects (
  partition_date DATE,
  reject_reason STRING,
  user_id STRING,
  event_ts STRING,
  event_name STRING,
  value STRING,
  properties STRING,
  source STRING
)
PARTITION BY partition_date
