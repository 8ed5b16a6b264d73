-- Rows and positive labels per snapshot of loyalty_training_set[@partition_date].
SELECT snapshot_date, COUNT(*) AS snapshot_rows, CAST(SUM(label) AS INT64) AS positives, MAX(horizon_days) AS horizon_days
FROM loyalty_training_set
WHERE partition_date = @partition_date
GROUP BY snapshot_date
ORDER BY snapshot_date
