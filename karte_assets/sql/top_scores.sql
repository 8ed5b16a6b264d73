-- The most loyal users of the scored day @partition_date.
SELECT partition_date, user_id, loyal_score, score_rank, score_decile, coupon_tier, model_version
FROM loyalty_scores
WHERE partition_date = @partition_date
ORDER BY score_rank
LIMIT @limit
