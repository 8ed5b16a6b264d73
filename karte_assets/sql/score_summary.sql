-- The audience of the scored day @partition_date per client and coupon tier, with the model that scored it.
SELECT partition_date, client_id, coupon_tier, model_version, COUNT(*) AS users,
  MIN(loyal_score) AS min_score, MAX(loyal_score) AS max_score
FROM loyalty_scores
WHERE partition_date = @partition_date AND client_id IN UNNEST(@client_ids)
GROUP BY partition_date, client_id, coupon_tier, model_version
ORDER BY client_id, coupon_tier
