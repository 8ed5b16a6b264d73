-- Rows of a source that could not be used for the day partition_date, as they came, with the reason,
-- and lines of a file that could not be read as a row (a wrong field count, bad quoting, invalid UTF-8).
CREATE TABLE IF NOT EXISTS raw_event_rejects (
  partition_date DATE,
  client_id STRING NOT NULL,
  reject_reason STRING,
  user_id STRING,
  event_ts STRING,
  event_name STRING,
  value STRING,
  properties STRING,
  source STRING,       -- the configured source (a path or glob)
  source_file STRING,  -- the file the row or line came from
  source_line INT64,   -- its line: the record's number in the file, the header being line 1
  raw_line STRING      -- a malformed line as it came (the columns above are then empty)
)
PARTITION BY partition_date
CLUSTER BY client_id
