-- loyalty_training_set[@partition_date] of the clients @client_ids joined with the features each
-- user had on the snapshot day.
SELECT
  t.snapshot_date,
  t.label,
  f.* EXCEPT (partition_date)
FROM loyalty_training_set AS t
JOIN user_features AS f
  ON f.partition_date = t.snapshot_date AND f.client_id = t.client_id AND f.user_id = t.user_id
WHERE t.partition_date = @partition_date AND t.client_id IN UNNEST(@client_ids)
ORDER BY f.client_id, t.snapshot_date, f.user_id
