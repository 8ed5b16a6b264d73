-- The @limit most anomalous users of @partition_date of the clients @client_ids, per the newest scores, with their reasons.
SELECT client_id, user_id, anomaly_score, flagged, reasons
FROM user_anomaly_scores
WHERE partition_date = @partition_date AND client_id IN UNNEST(@client_ids)
ORDER BY anomaly_score DESC, user_id
LIMIT @limit
