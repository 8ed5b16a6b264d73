-- The audience of the scored day @partition_date per coupon tier, with the model that scored it.
SELECT partition_date, coupon_tier, model_version, COUNT(*) AS users,
  MIN(loyal_score) AS min_score, MAX(loyal_score) AS max_score
FROM loyalty_scores
WHERE partition_date = @partition_date
GROUP BY partition_date, coupon_tier, model_version
ORDER BY coupon_tier
