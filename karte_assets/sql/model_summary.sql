-- Per client of @client_ids, the newest trained model and how it did against the purchase-frequency baseline.
SELECT * EXCEPT (newest)
FROM (
  SELECT
    client_id, partition_date, model_version, validation_auc, baseline_auc, train_rows, validation_rows,
    ROW_NUMBER() OVER (PARTITION BY client_id ORDER BY partition_date DESC) AS newest
  FROM loyalty_model
  WHERE status = 'trained' AND client_id IN UNNEST(@client_ids)
)
WHERE newest = 1
