-- The newest day before @partition_date with a trained model, accepted or rejected (NULL if none):
-- the retrain cadence counts from it.
SELECT MAX(partition_date) AS partition_date
FROM loyalty_model
WHERE partition_date < @partition_date AND status IN ('trained', 'rejected')
