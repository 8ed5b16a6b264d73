-- The coupon audience of @partition_date: every user with a coupon tier, the most loyal first.
SELECT user_id, coupon_tier, loyal_score, score_rank, model_version
FROM loyalty_scores
WHERE partition_date = @partition_date AND coupon_tier != 'none'
ORDER BY score_rank
