-- The most loyal users of the newest scored day.
SELECT partition_date, user_id, loyal_score, score_rank, score_decile, coupon_tier, model_version
FROM loyalty_scores
WHERE partition_date = (SELECT MAX(partition_date) FROM loyalty_scores)
ORDER BY score_rank
LIMIT @limit
