-- One row per day of @first_date..@last_date, client of @client_ids and user active that day:
-- event counts, revenue and sessions. A session ends after @session_gap_seconds without an event
-- (and with the day: each day's sessions are its own, whatever range the query covers).
WITH events AS (
  SELECT
    partition_date,
    client_id,
    user_id,
    event_ts,
    event_name,
    value,
    TIMESTAMP_DIFF(
      event_ts, LAG(event_ts) OVER (PARTITION BY partition_date, client_id, user_id ORDER BY event_ts), SECOND
    ) AS seconds_since_previous
  FROM raw_events
  WHERE partition_date BETWEEN @first_date AND @last_date AND client_id IN UNNEST(@client_ids)
)
SELECT
  partition_date,
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
GROUP BY partition_date, client_id, user_id
