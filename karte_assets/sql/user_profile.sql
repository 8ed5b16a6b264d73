-- user_profile[D] = user_profile[D-1] (+) user_daily_activity[D]: reads two days, never all history,
-- of the clients @client_ids. The gaps between purchase days are carried as their last value and the
-- sum of their squares (their plain sum is last_purchase_date - first_purchase_date), so their mean
-- and spread need no history.
WITH previous AS (
  SELECT * FROM user_profile
  WHERE partition_date = DATE_SUB(@partition_date, INTERVAL 1 DAY) AND client_id IN UNNEST(@client_ids)
),
today AS (
  SELECT * FROM user_daily_activity WHERE partition_date = @partition_date AND client_id IN UNNEST(@client_ids)
)
SELECT
  COALESCE(t.client_id, p.client_id) AS client_id,
  COALESCE(t.user_id, p.user_id) AS user_id,
  COALESCE(p.first_seen_date, @partition_date) AS first_seen_date,
  IF(t.user_id IS NULL, p.last_seen_date, @partition_date) AS last_seen_date,
  COALESCE(p.first_purchase_date, IF(t.purchases > 0, @partition_date, NULL)) AS first_purchase_date,
  IF(t.purchases > 0, @partition_date, p.last_purchase_date) AS last_purchase_date,
  COALESCE(p.active_days, 0) + IF(t.user_id IS NULL, 0, 1) AS active_days,
  COALESCE(p.events, 0) + COALESCE(t.events, 0) AS events,
  COALESCE(p.sessions, 0) + COALESCE(t.sessions, 0) AS sessions,
  COALESCE(p.views, 0) + COALESCE(t.views, 0) AS views,
  COALESCE(p.clicks, 0) + COALESCE(t.clicks, 0) AS clicks,
  COALESCE(p.carts, 0) + COALESCE(t.carts, 0) AS carts,
  COALESCE(p.purchases, 0) + COALESCE(t.purchases, 0) AS purchases,
  COALESCE(p.revenue, 0) + COALESCE(t.revenue, 0) AS revenue,
  COALESCE(p.purchase_days, 0) + IF(t.purchases > 0, 1, 0) AS purchase_days,
  IF(t.purchases > 0, DATE_DIFF(@partition_date, p.last_purchase_date, DAY), p.last_purchase_gap_days)
    AS last_purchase_gap_days,
  COALESCE(p.purchase_gap_square_sum, 0)
    + IF(t.purchases > 0, COALESCE(POW(DATE_DIFF(@partition_date, p.last_purchase_date, DAY), 2), 0), 0)
    AS purchase_gap_square_sum
FROM previous AS p
FULL OUTER JOIN today AS t ON p.client_id = t.client_id AND p.user_id = t.user_id
