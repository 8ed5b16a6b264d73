-- Rows and positive labels per client and snapshot of loyalty_training_set[@partition_date].
SELECT client_id, snapshot_date, COUNT(*) AS snapshot_rows, CAST(SUM(label) AS INT64) AS positives, MAX(horizon_days) AS horizon_days
FROM loyalty_training_set
WHERE partition_date = @partition_date AND client_id IN UNNEST(@client_ids)
GROUP BY client_id, snapshot_date
ORDER BY client_id, snapshot_date
