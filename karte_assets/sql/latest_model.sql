-- Per client of @client_ids, the newest accepted model trained for a day up to @partition_date
-- (rejected ones never score).
SELECT * EXCEPT (newest)
FROM (
  SELECT
    client_id, partition_date, model_version, model_uri, validation_auc,
    ROW_NUMBER() OVER (PARTITION BY client_id ORDER BY partition_date DESC) AS newest
  FROM loyalty_model
  WHERE partition_date <= @partition_date AND status = 'trained' AND client_id IN UNNEST(@client_ids)
)
WHERE newest = 1
