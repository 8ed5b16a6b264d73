-- The newest trained model and how it did against the purchase-frequency baseline.
SELECT partition_date, model_version, validation_auc, baseline_auc, train_rows, validation_rows
FROM loyalty_model
WHERE status = 'trained'
ORDER BY partition_date DESC
LIMIT 1
