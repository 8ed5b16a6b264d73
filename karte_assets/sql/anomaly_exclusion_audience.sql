-- The users of the clients @client_ids to leave out of the ad and coupon audiences on @partition_date: the flagged users of
-- user_anomaly_scores, the most anomalous first.
SELECT client_id, user_id, anomaly_score, reasons, model_version
FROM user_anomaly_scores
WHERE partition_date = @partition_date AND client_id IN UNNEST(@client_ids) AND flagged
ORDER BY client_id, anomaly_score DESC, user_id
