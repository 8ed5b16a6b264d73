-- The model trained for @partition_date: trained (accepted), rejected or skipped, and its version.
SELECT status, model_version
FROM loyalty_model
WHERE partition_date = @partition_date
