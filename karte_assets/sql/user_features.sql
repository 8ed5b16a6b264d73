-- Features of every user of the clients @client_ids seen up to @partition_date, from days <= @partition_date only:
-- lifetime recency/frequency/monetary from user_profile, rolling 7/28/90-day windows from activity,
-- and the gaps between purchase days (what BG/NBD and Pareto/NBD model: how often a user buys, and
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
recent AS (
  SELECT
    *,
    DATE_DIFF(@partition_date, partition_date, DAY) AS days_ago
  FROM user_daily_activity
  WHERE partition_date > DATE_SUB(@partition_date, INTERVAL 90 DAY)
    AND partition_date <= @partition_date
    AND client_id IN UNNEST(@client_ids)
),
windows AS (
  SELECT
    client_id,
    user_id,
    COUNTIF(days_ago < 7) AS active_days_7d,
    CAST(SUM(IF(days_ago < 7, sessions, 0)) AS INT64) AS sessions_7d,
    CAST(SUM(IF(days_ago < 7, views, 0)) AS INT64) AS views_7d,
    CAST(SUM(IF(days_ago < 7, carts, 0)) AS INT64) AS carts_7d,
    CAST(SUM(IF(days_ago < 7, purchases, 0)) AS INT64) AS purchases_7d,
    SUM(IF(days_ago < 7, revenue, 0)) AS revenue_7d,
    COUNTIF(days_ago < 28) AS active_days_28d,
    CAST(SUM(IF(days_ago < 28, sessions, 0)) AS INT64) AS sessions_28d,
    CAST(SUM(IF(days_ago < 28, views, 0)) AS INT64) AS views_28d,
    CAST(SUM(IF(days_ago < 28, carts, 0)) AS INT64) AS carts_28d,
    CAST(SUM(IF(days_ago < 28, purchases, 0)) AS INT64) AS purchases_28d,
    SUM(IF(days_ago < 28, revenue, 0)) AS revenue_28d,
    COUNT(*) AS active_days_90d,
    CAST(SUM(sessions) AS INT64) AS sessions_90d,
    CAST(SUM(views) AS INT64) AS views_90d,
    CAST(SUM(carts) AS INT64) AS carts_90d,
    CAST(SUM(purchases) AS INT64) AS purchases_90d,
    SUM(revenue) AS revenue_90d
  FROM recent
  GROUP BY client_id, user_id
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
  COALESCE(w.active_days_7d, 0) AS active_days_7d,
  COALESCE(w.sessions_7d, 0) AS sessions_7d,
  COALESCE(w.views_7d, 0) AS views_7d,
  COALESCE(w.carts_7d, 0) AS carts_7d,
  COALESCE(w.purchases_7d, 0) AS purchases_7d,
  COALESCE(w.revenue_7d, 0) AS revenue_7d,
  COALESCE(w.active_days_28d, 0) AS active_days_28d,
  COALESCE(w.sessions_28d, 0) AS sessions_28d,
  COALESCE(w.views_28d, 0) AS views_28d,
  COALESCE(w.carts_28d, 0) AS carts_28d,
  COALESCE(w.purchases_28d, 0) AS purchases_28d,
  COALESCE(w.revenue_28d, 0) AS revenue_28d,
  COALESCE(w.active_days_90d, 0) AS active_days_90d,
  COALESCE(w.sessions_90d, 0) AS sessions_90d,
  COALESCE(w.views_90d, 0) AS views_90d,
  COALESCE(w.carts_90d, 0) AS carts_90d,
  COALESCE(w.purchases_90d, 0) AS purchases_90d,
  COALESCE(w.revenue_90d, 0) AS revenue_90d,
  SAFE_DIVIDE(w.purchases_28d, w.carts_28d) AS cart_conversion_28d,
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
FROM profile AS p
LEFT JOIN windows AS w ON p.client_id = w.client_id AND p.user_id = w.user_id
