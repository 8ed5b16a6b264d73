-- What should never be in raw_events, counted per day of @first_date..@last_date and client of
-- @client_ids (clients of time zone @timezone): the rows a check must find at 0.
-- A duplicate is a second row of one event id on its day (kept in properties as event_id): rows
-- without an id are distinct events even when identical (two orders of one amount on one day).
SELECT
  partition_date,
  client_id,
  COUNT(*) AS events,
  COUNTIF(user_id IS NULL OR TRIM(user_id) = '') AS null_user_ids,
  COUNTIF(event_name IS NULL OR event_name NOT IN UNNEST(@event_names)) AS unknown_event_names,
  COUNTIF(event_ts IS NULL OR DATE(event_ts, @timezone) != partition_date) AS outside_day,
  COUNTIF(value IS NULL OR IS_NAN(value) OR value < 0) AS invalid_values,
  COUNT(JSON_VALUE(properties, '$.event_id')) - COUNT(DISTINCT JSON_VALUE(properties, '$.event_id')) AS duplicates
FROM raw_events
WHERE partition_date BETWEEN @first_date AND @last_date AND client_id IN UNNEST(@client_ids)
GROUP BY partition_date, client_id
