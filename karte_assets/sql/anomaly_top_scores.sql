-- The @limit most anomalous users of @partition_date, per the newest scores, with their reasons.
SELECT client_id, user_id, anomaly_score, flagged, reasons
FROM user_anomaly_scores
WHERE partition_date = @partition_date
ORDER BY anomaly_score DESC, user_id
LIMIT @limit
