-- The coupon audience of @partition_date for the clients @client_ids (an export names one): every
-- user with a coupon tier, the most loyal first.
SELECT client_id, user_id, coupon_tier, loyal_score, score_rank, model_version
FROM loyalty_scores
WHERE partition_date = @partition_date AND client_id IN UNNEST(@client_ids) AND coupon_tier != 'none'
ORDER BY client_id, score_rank
