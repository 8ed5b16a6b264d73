-- The newest accepted model trained for a day up to @partition_date (rejected ones never score).
SELECT partition_date, model_version, model_uri, validation_auc
FROM loyalty_model
WHERE partition_date <= @partition_date AND status = 'trained'
ORDER BY partition_date DESC
LIMIT 1
