-- The newest scored day: its audience per coupon tier, with the model that scored it.
SELECT partition_date, coupon_tier, model_version, COUNT(*) AS users,
  MIN(loyal_score) AS min_score, MAX(loyal_score) AS max_score
FROM loyalty_scores
WHERE partition_date = (SELECT MAX(partition_date) FROM loyalty_scores)
GROUP BY partition_date, coupon_tier, model_version
ORDER BY coupon_tier
