-- Per client of @client_ids, the newest day before @partition_date with a trained model, accepted or
-- rejected (a client with none has no row): the retrain cadence counts from it.
SELECT client_id, MAX(partition_date) AS partition_date
FROM loyalty_model
WHERE partition_date < @partition_date AND status IN ('trained', 'rejected') AND client_id IN UNNEST(@client_ids)
GROUP BY client_id
