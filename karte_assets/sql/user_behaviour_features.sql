-- Behaviour of every user active on @partition_date, for anomaly detection (bots, cheaters):
-- rates, the regularity of the gaps between events (coefficient of variation: 0 = machine timing,
-- about 1 = a person's irregular, Poisson-like clicks; how often one gap length repeats), the share of each event type, session
-- shapes, purchase value patterns, and today's volume against the user's own previous @days days
-- of user_daily_activity. A session ends after @session_gap_seconds without an event. Per client
-- of @client_ids: a user is (client_id, user_id), so shops sharing user ids never mix.
WITH events AS (
  SELECT
    client_id,
    user_id,
    event_ts,
    event_name,
    value,
    TIMESTAMP_DIFF(
      event_ts, LAG(event_ts) OVER (PARTITION BY client_id, user_id ORDER BY event_ts), MILLISECOND
    ) / 1000 AS gap_seconds
  FROM raw_events
  WHERE partition_date = @partition_date AND client_id IN UNNEST(@client_ids)
),
sessioned AS (
  SELECT
    client_id,
    user_id,
    event_ts,
    SUM(IF(gap_seconds IS NULL OR gap_seconds > @session_gap_seconds, 1, 0))
      OVER (PARTITION BY client_id, user_id ORDER BY event_ts ROWS UNBOUNDED PRECEDING) AS session_number
  FROM events
),
sessions AS (
  SELECT
    client_id,
    user_id,
    COUNT(*) AS events,
    TIMESTAMP_DIFF(MAX(event_ts), MIN(event_ts), SECOND) AS seconds
  FROM sessioned
  GROUP BY client_id, user_id, session_number
),
session_shapes AS (
  SELECT
    client_id,
    user_id,
    COUNT(*) AS sessions,
    AVG(seconds) AS mean_session_seconds,
    MAX(events) AS max_session_events
  FROM sessions
  GROUP BY client_id, user_id
),
minutes AS (
  SELECT client_id, user_id, COUNT(*) AS events
  FROM events
  GROUP BY client_id, user_id, TIMESTAMP_TRUNC(event_ts, MINUTE)
),
peaks AS (
  SELECT client_id, user_id, MAX(events) AS peak_events_per_minute
  FROM minutes
  GROUP BY client_id, user_id
),
gap_counts AS (
  -- Gaps rounded to the second: a script's timer repeats one value, a person's clicks scatter.
  SELECT client_id, user_id, COUNT(*) AS gaps
  FROM events
  WHERE gap_seconds IS NOT NULL
  GROUP BY client_id, user_id, ROUND(gap_seconds)
),
modal_gaps AS (
  SELECT client_id, user_id, MAX(gaps) AS modal_gap_count
  FROM gap_counts
  GROUP BY client_id, user_id
),
purchase_values AS (
  SELECT
    client_id,
    user_id,
    COUNT(*) AS purchases,
    COUNT(DISTINCT value) AS distinct_values,
    SUM(value) AS revenue
  FROM events
  WHERE event_name = 'purchase'
  GROUP BY client_id, user_id
),
day AS (
  SELECT
    client_id,
    user_id,
    COUNT(*) AS events,
    COUNTIF(event_name = 'view') AS views,
    COUNTIF(event_name = 'click') AS clicks,
    COUNTIF(event_name = 'cart') AS carts,
    COUNT(gap_seconds) AS gaps,
    AVG(gap_seconds) AS mean_gap_seconds,
    STDDEV_POP(gap_seconds) AS gap_sd,
    MIN(gap_seconds) AS min_gap_seconds,
    TIMESTAMP_DIFF(MAX(event_ts), MIN(event_ts), SECOND) AS active_seconds,
    COUNT(DISTINCT EXTRACT(HOUR FROM event_ts)) AS active_hours
  FROM events
  GROUP BY client_id, user_id
),
history AS (
  SELECT
    client_id,
    user_id,
    COUNT(*) AS history_days,
    AVG(events) AS mean_events,
    AVG(purchases) AS mean_purchases
  FROM user_daily_activity
  WHERE partition_date BETWEEN DATE_SUB(@partition_date, INTERVAL @days DAY)
    AND DATE_SUB(@partition_date, INTERVAL 1 DAY)
    AND client_id IN UNNEST(@client_ids)
  GROUP BY client_id, user_id
)
SELECT
  day.client_id,
  day.user_id,
  day.events,
  -- Per hour of the span from first to last event, the span at least a minute.
  day.events * 3600 / GREATEST(day.active_seconds, 60) AS events_per_active_hour,
  peaks.peak_events_per_minute,
  day.active_hours,
  day.gaps,
  COALESCE(day.mean_gap_seconds, 0) AS mean_gap_seconds,
  COALESCE(day.min_gap_seconds, 0) AS min_gap_seconds,
  -- Under two gaps there is no spread to measure: 1 is the value of a Poisson process.
  IF(day.gaps < 2 OR day.mean_gap_seconds = 0, 1, day.gap_sd / day.mean_gap_seconds) AS gap_cv,
  -- How many gaps share the most common length (whole seconds), and their share of all gaps (0
  -- under two gaps): many equal gaps are the evidence of a timer that one low gap_cv is not.
  COALESCE(modal_gaps.modal_gap_count, 0) AS modal_gap_count,
  IF(day.gaps < 2, 0, modal_gaps.modal_gap_count / day.gaps) AS modal_gap_share,
  day.views / day.events AS view_share,
  day.clicks / day.events AS click_share,
  day.carts / day.events AS cart_share,
  COALESCE(purchase_values.purchases, 0) / day.events AS purchase_share,
  session_shapes.sessions,
  day.events / session_shapes.sessions AS events_per_session,
  session_shapes.mean_session_seconds,
  session_shapes.max_session_events,
  COALESCE(purchase_values.purchases, 0) AS purchases,
  COALESCE(purchase_values.revenue, 0) AS revenue,
  -- 0 when every purchase has its own amount; near 1 when a script buys one amount again and again.
  IF(
    COALESCE(purchase_values.purchases, 0) < 2,
    0,
    1 - purchase_values.distinct_values / purchase_values.purchases
  ) AS repeated_value_share,
  COALESCE(history.history_days, 0) AS history_days,
  -- Today against the user's own active days before (1 without history); +1 keeps zeros finite.
  (day.events + 1) / (COALESCE(history.mean_events, day.events) + 1) AS events_vs_history,
  (COALESCE(purchase_values.purchases, 0) + 1)
    / (COALESCE(history.mean_purchases, COALESCE(purchase_values.purchases, 0)) + 1) AS purchases_vs_history
FROM day
JOIN session_shapes USING (client_id, user_id)
JOIN peaks USING (client_id, user_id)
LEFT JOIN modal_gaps USING (client_id, user_id)
LEFT JOIN purchase_values USING (client_id, user_id)
LEFT JOIN history USING (client_id, user_id)
