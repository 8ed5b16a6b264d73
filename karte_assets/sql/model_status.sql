-- Per client of @client_ids, the model trained for @partition_date: trained (accepted), rejected,
-- skipped or not_due, and its version.
SELECT client_id, status, model_version
FROM loyalty_model
WHERE partition_date = @partition_date AND client_id IN UNNEST(@client_ids)
