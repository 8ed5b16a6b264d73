-- Labelled snapshots for the models of @partition_date of the clients @client_ids: every user of user_features[s] for the
-- snapshot days s in [@first_snapshot_date, @last_snapshot_date], one every @snapshot_every_days,
-- labelled 1 if they purchased in (s, s + @horizon_days]. The caller keeps
-- @last_snapshot_date + @horizon_days <= @partition_date, so no label looks past @partition_date.
WITH snapshots AS (
  SELECT client_id, partition_date AS snapshot_date, user_id
  FROM user_features
  WHERE partition_date BETWEEN @first_snapshot_date AND @last_snapshot_date
    AND client_id IN UNNEST(@client_ids)
    AND MOD(DATE_DIFF(@last_snapshot_date, partition_date, DAY), @snapshot_every_days) = 0
),
purchase_days AS (
  SELECT client_id, user_id, partition_date AS purchase_date
  FROM user_daily_activity
  WHERE purchases > 0
    AND client_id IN UNNEST(@client_ids)
    AND partition_date > @first_snapshot_date
    AND partition_date <= DATE_ADD(@last_snapshot_date, INTERVAL @horizon_days DAY)
)
SELECT
  s.client_id,
  s.snapshot_date,
  s.user_id,
  @horizon_days AS horizon_days,
  CAST(COUNT(p.purchase_date) > 0 AS INT64) AS label
FROM snapshots AS s
LEFT JOIN purchase_days AS p
  ON p.client_id = s.client_id
  AND p.user_id = s.user_id
  AND p.purchase_date > s.snapshot_date
  AND p.purchase_date <= DATE_ADD(s.snapshot_date, INTERVAL @horizon_days DAY)
GROUP BY s.client_id, s.snapshot_date, s.user_id
