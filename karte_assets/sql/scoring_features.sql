-- The audience to score on @partition_date for the clients @client_ids: every user each has seen up
-- to that day, with their features.
SELECT * EXCEPT (partition_date)
FROM user_features
WHERE partition_date = @partition_date AND client_id IN UNNEST(@client_ids)
ORDER BY client_id, user_id
