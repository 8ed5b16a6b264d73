-- Per client: users, lowest and highest score per coupon tier of @partition_date, and scores outside [0, 1].
SELECT
  client_id,
  coupon_tier,
  COUNT(*) AS users,
  MIN(loyal_score) AS min_score,
  MAX(loyal_score) AS max_score,
  COUNTIF(loyal_score IS NULL OR loyal_score < 0 OR loyal_score > 1) AS invalid_scores
FROM loyalty_scores
WHERE partition_date = @partition_date AND client_id IN UNNEST(@client_ids)
GROUP BY client_id, coupon_tier
ORDER BY client_id, coupon_tier
