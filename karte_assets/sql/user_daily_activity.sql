-- One row per client of @client_ids and user active on @partition_date: event counts, revenue and sessions.
-- A session ends after @session_gap_seconds without an event.
WITH events AS (
  SELECT
    client_id,
    user_id,
    event_ts,
    event_name,
    value,
    TIMESTAMP_DIFF(
      event_ts, LAG(event_ts) OVER (PARTITION BY client_id, user_id ORDER BY event_ts), SECOND
    ) AS seconds_since_previous
  FROM raw_events
  WHERE partition_date = @partition_date AND client_id IN UNNEST(@client_ids)
)
SELECT
  client_id,
  user_id,
  COUNT(*) AS events,
  COUNTIF(seconds_since_previous IS NULL OR seconds_since_previous > @session_gap_seconds) AS sessions,
  COUNTIF(event_name = 'view') AS views,
  COUNTIF(event_name = 'click') AS clicks,
  COUNTIF(event_name = 'cart') AS carts,
  COUNTIF(event_name = 'purchase') AS purchases,
  SUM(IF(event_name = 'purchase', value, 0)) AS revenue,
  MIN(event_ts) AS first_event_ts,
  MAX(event_ts) AS last_event_ts
FROM events
GROUP BY client_id, user_id
