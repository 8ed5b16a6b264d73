-- Features of every user of the clients @client_ids seen up to @partition_date, from days <= @partition_date only:
-- lifetime recency/frequency/monetary from user_profile, rolling 7/28/90-day windows carried from
-- user_features[@partition_date - 1] (as user_profile is: a day's cost does not grow with the
-- windows' days), and the gaps between purchase days (what BG/NBD and Pareto/NBD model: how often a user buys, and
-- how long the current silence is against their own rhythm).
-- (Integer sums are cast back to INT64: BigQuery already sums to INT64, DuckDB to HUGEINT.)
WITH profile AS (
  SELECT
    *,
    SAFE_DIVIDE(DATE_DIFF(last_purchase_date, first_purchase_date, DAY), purchase_days - 1)
      AS mean_purchase_gap_days
  FROM user_profile
  WHERE partition_date = @partition_date AND client_id IN UNNEST(@client_ids)
),
-- The windows of the day before, for the users it had (none on a client's first day).
previous AS (
  SELECT * FROM user_features
  WHERE partition_date = DATE_SUB(@partition_date, INTERVAL 1 DAY) AND client_id IN UNNEST(@client_ids)
),
-- Per window, +1 for the day entering it (@partition_date) and -1 for the day leaving it
-- (@partition_date - 7, 28 or 90 days): four days of activity, whatever the history's length.
moves AS (
  SELECT
    *,
    CASE DATE_DIFF(@partition_date, partition_date, DAY) WHEN 0 THEN 1 WHEN 7 THEN -1 ELSE 0 END AS in_7d,
    CASE DATE_DIFF(@partition_date, partition_date, DAY) WHEN 0 THEN 1 WHEN 28 THEN -1 ELSE 0 END AS in_28d,
    CASE DATE_DIFF(@partition_date, partition_date, DAY) WHEN 0 THEN 1 WHEN 90 THEN -1 ELSE 0 END AS in_90d
  FROM user_daily_activity
  WHERE partition_date IN (
      @partition_date,
      DATE_SUB(@partition_date, INTERVAL 7 DAY),
      DATE_SUB(@partition_date, INTERVAL 28 DAY),
      DATE_SUB(@partition_date, INTERVAL 90 DAY)
    )
    AND client_id IN UNNEST(@client_ids)
),
changes AS (
  SELECT
    client_id,
    user_id,
    CAST(SUM(in_7d) AS INT64) AS active_days_7d,
    CAST(SUM(in_7d * sessions) AS INT64) AS sessions_7d,
    CAST(SUM(in_7d * views) AS INT64) AS views_7d,
    CAST(SUM(in_7d * carts) AS INT64) AS carts_7d,
    CAST(SUM(in_7d * purchases) AS INT64) AS purchases_7d,
    SUM(in_7d * revenue) AS revenue_7d,
    CAST(SUM(in_28d) AS INT64) AS active_days_28d,
    CAST(SUM(in_28d * sessions) AS INT64) AS sessions_28d,
    CAST(SUM(in_28d * views) AS INT64) AS views_28d,
    CAST(SUM(in_28d * carts) AS INT64) AS carts_28d,
    CAST(SUM(in_28d * purchases) AS INT64) AS purchases_28d,
    SUM(in_28d * revenue) AS revenue_28d,
    CAST(SUM(in_90d) AS INT64) AS active_days_90d,
    CAST(SUM(in_90d * sessions) AS INT64) AS sessions_90d,
    CAST(SUM(in_90d * views) AS INT64) AS views_90d,
    CAST(SUM(in_90d * carts) AS INT64) AS carts_90d,
    CAST(SUM(in_90d * purchases) AS INT64) AS purchases_90d,
    SUM(in_90d * revenue) AS revenue_90d
  FROM moves
  GROUP BY client_id, user_id
),
-- w[D] = w[D-1] + activity[D] - activity[D-N], for every user seen so far.
windows AS (
  SELECT
    p.*,
    COALESCE(w.active_days_7d, 0) + COALESCE(c.active_days_7d, 0) AS active_days_7d,
    COALESCE(w.sessions_7d, 0) + COALESCE(c.sessions_7d, 0) AS sessions_7d,
    COALESCE(w.views_7d, 0) + COALESCE(c.views_7d, 0) AS views_7d,
    COALESCE(w.carts_7d, 0) + COALESCE(c.carts_7d, 0) AS carts_7d,
    COALESCE(w.purchases_7d, 0) + COALESCE(c.purchases_7d, 0) AS purchases_7d,
    COALESCE(w.revenue_7d, 0) + COALESCE(c.revenue_7d, 0) AS revenue_7d,
    COALESCE(w.active_days_28d, 0) + COALESCE(c.active_days_28d, 0) AS active_days_28d,
    COALESCE(w.sessions_28d, 0) + COALESCE(c.sessions_28d, 0) AS sessions_28d,
    COALESCE(w.views_28d, 0) + COALESCE(c.views_28d, 0) AS views_28d,
    COALESCE(w.carts_28d, 0) + COALESCE(c.carts_28d, 0) AS carts_28d,
    COALESCE(w.purchases_28d, 0) + COALESCE(c.purchases_28d, 0) AS purchases_28d,
    COALESCE(w.revenue_28d, 0) + COALESCE(c.revenue_28d, 0) AS revenue_28d,
    COALESCE(w.active_days_90d, 0) + COALESCE(c.active_days_90d, 0) AS active_days_90d,
    COALESCE(w.sessions_90d, 0) + COALESCE(c.sessions_90d, 0) AS sessions_90d,
    COALESCE(w.views_90d, 0) + COALESCE(c.views_90d, 0) AS views_90d,
    COALESCE(w.carts_90d, 0) + COALESCE(c.carts_90d, 0) AS carts_90d,
    COALESCE(w.purchases_90d, 0) + COALESCE(c.purchases_90d, 0) AS purchases_90d,
    COALESCE(w.revenue_90d, 0) + COALESCE(c.revenue_90d, 0) AS revenue_90d
  FROM profile AS p
  LEFT JOIN previous AS w ON p.client_id = w.client_id AND p.user_id = w.user_id
  LEFT JOIN changes AS c ON p.client_id = c.client_id AND p.user_id = c.user_id
)
SELECT
  p.client_id,
  p.user_id,
  DATE_DIFF(@partition_date, p.first_seen_date, DAY) AS tenure_days,
  DATE_DIFF(@partition_date, p.last_seen_date, DAY) AS days_since_last_seen,
  DATE_DIFF(@partition_date, p.last_purchase_date, DAY) AS days_since_last_purchase,
  p.active_days AS lifetime_active_days,
  p.sessions AS lifetime_sessions,
  p.views AS lifetime_views,
  p.carts AS lifetime_carts,
  p.purchases AS lifetime_purchases,
  p.revenue AS lifetime_revenue,
  SAFE_DIVIDE(p.revenue, p.purchases) AS average_order_value,
  SAFE_DIVIDE(p.purchases, p.active_days) AS purchases_per_active_day,
  SAFE_DIVIDE(p.active_days, DATE_DIFF(@partition_date, p.first_seen_date, DAY) + 1) AS active_day_share,
  p.active_days_7d,
  p.sessions_7d,
  p.views_7d,
  p.carts_7d,
  p.purchases_7d,
  -- Revenue comes from purchases only: a window without one holds exactly 0, not the float residue
  -- of adding and later subtracting the same amounts.
  IF(p.purchases_7d = 0, 0.0, p.revenue_7d) AS revenue_7d,
  p.active_days_28d,
  p.sessions_28d,
  p.views_28d,
  p.carts_28d,
  p.purchases_28d,
  IF(p.purchases_28d = 0, 0.0, p.revenue_28d) AS revenue_28d,
  p.active_days_90d,
  p.sessions_90d,
  p.views_90d,
  p.carts_90d,
  p.purchases_90d,
  IF(p.purchases_90d = 0, 0.0, p.revenue_90d) AS revenue_90d,
  SAFE_DIVIDE(p.purchases_28d, p.carts_28d) AS cart_conversion_28d,
  p.purchase_days,
  DATE_DIFF(@partition_date, p.first_purchase_date, DAY) AS days_since_first_purchase,
  DATE_DIFF(p.last_purchase_date, p.first_purchase_date, DAY) AS purchase_span_days,
  p.mean_purchase_gap_days,
  -- The spread of the gaps from the sum of their squares: variance = E[gap^2] - mean^2, never below 0
  -- but for rounding, which ABS absorbs (GREATEST would not do: DuckDB's skips a NULL, BigQuery's returns it).
  SQRT(ABS(SAFE_DIVIDE(p.purchase_gap_square_sum, p.purchase_days - 1) - POW(p.mean_purchase_gap_days, 2)))
    AS purchase_gap_std_days,
  p.last_purchase_gap_days,
  SAFE_DIVIDE(DATE_DIFF(@partition_date, p.last_purchase_date, DAY), p.mean_purchase_gap_days)
    AS days_since_last_purchase_per_gap,
  SAFE_DIVIDE(p.purchase_days, DATE_DIFF(@partition_date, p.first_purchase_date, DAY) + 1) AS purchase_day_rate
FROM windows AS p
