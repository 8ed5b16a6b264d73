-- BigQuery only: the events of one local day, [@day_start, @day_end), from the existing events
-- table (KARTE_BQ_EVENTS_TABLE, partitioned by day on event_ts), in the event schema, as the
-- events of the client @client_id (the table holds one shop's events).
-- `events_table` is replaced by the configured, validated table name.
SELECT
  @client_id AS client_id,
  CAST(user_id AS STRING) AS user_id,
  event_ts,
  CAST(event_name AS STRING) AS event_name,
  CAST(COALESCE(value, 0) AS FLOAT64) AS value,
  CAST(properties AS STRING) AS properties
FROM events_table
WHERE event_ts >= @day_start AND event_ts < @day_end
