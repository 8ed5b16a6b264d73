-- The features of every user seen up to the day partition_date, from days <= partition_date only
-- (sql/user_features.sql writes it; the model trains and scores on these columns).
CREATE TABLE IF NOT EXISTS user_features (
  partition_date DATE,
  client_id STRING NOT NULL,
  user_id STRING,
  tenure_days INT64,
  days_since_last_seen INT64,
  days_since_last_purchase INT64,   -- NULL: never purchased
  lifetime_active_days INT64,
  lifetime_sessions INT64,
  lifetime_views INT64,
  lifetime_carts INT64,
  lifetime_purchases INT64,
  lifetime_revenue FLOAT64,
  average_order_value FLOAT64,
  purchases_per_active_day FLOAT64,
  active_day_share FLOAT64,
  active_days_7d INT64,
  sessions_7d INT64,
  views_7d INT64,
  carts_7d INT64,
  purchases_7d INT64,
  revenue_7d FLOAT64,
  active_days_28d INT64,
  sessions_28d INT64,
  views_28d INT64,
  carts_28d INT64,
  purchases_28d INT64,
  revenue_28d FLOAT64,
  active_days_90d INT64,
  sessions_90d INT64,
  views_90d INT64,
  carts_90d INT64,
  purchases_90d INT64,
  revenue_90d FLOAT64,
  cart_conversion_28d FLOAT64,
  -- The gaps between purchase days (NULL: never purchased, or fewer than two purchase days).
  purchase_days INT64,
  days_since_first_purchase INT64,
  purchase_span_days INT64,           -- first to last purchase day
  mean_purchase_gap_days FLOAT64,
  purchase_gap_std_days FLOAT64,
  last_purchase_gap_days INT64,
  days_since_last_purchase_per_gap FLOAT64,  -- the current silence over the mean gap
  purchase_day_rate FLOAT64           -- purchase days per day since the first purchase
)
PARTITION BY partition_date
CLUSTER BY client_id, user_id
