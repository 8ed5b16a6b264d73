-- The @limit most loyal users of each client of @client_ids on the scored day @partition_date.
SELECT partition_date, client_id, user_id, loyal_score, score_rank, score_decile, coupon_tier, model_version
FROM loyalty_scores
WHERE partition_date = @partition_date AND client_id IN UNNEST(@client_ids) AND score_rank <= @limit
ORDER BY client_id, score_rank
