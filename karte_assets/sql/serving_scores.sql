-- What the lookup service serves of @partition_date for the clients @client_ids (a snapshot holds
-- one): every scored user's score and coupon tier.
SELECT user_id, loyal_score, coupon_tier
FROM loyalty_scores
WHERE partition_date = @partition_date AND client_id IN UNNEST(@client_ids)
