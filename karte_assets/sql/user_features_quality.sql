-- Per day of @first_date..@last_date and client of @client_ids, rows of user_features that break what a feature can be: nulls where none may
-- be, counts below zero, windows holding more active days than they have days.
SELECT
  partition_date,
  client_id,
  COUNT(*) AS users,
  COUNTIF(user_id IS NULL OR tenure_days IS NULL OR days_since_last_seen IS NULL OR lifetime_active_days IS NULL) AS null_rows,
  COUNTIF(
    tenure_days < 0 OR days_since_last_seen < 0 OR days_since_last_seen > tenure_days
    OR days_since_last_purchase < 0 OR lifetime_active_days < 1 OR lifetime_revenue < 0
    OR purchases_90d < purchases_28d OR purchases_28d < purchases_7d
    OR active_days_7d > 7 OR active_days_28d > 28 OR active_days_90d > 90
    OR lifetime_purchases < purchases_90d
  ) AS out_of_range,
  COUNTIF(days_since_last_purchase IS NULL) AS never_purchased
FROM user_features
WHERE partition_date BETWEEN @first_date AND @last_date AND client_id IN UNNEST(@client_ids)
GROUP BY partition_date, client_id
