-- The @limit most loyal users of @partition_date.
SELECT user_id, loyal_score, score_rank, score_decile, coupon_tier, model_version
FROM loyalty_scores
WHERE partition_date = @partition_date
ORDER BY score_rank
LIMIT @limit
