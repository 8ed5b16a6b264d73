-- The behaviour features of @partition_date of the clients @client_ids (a detector scores one
-- client at a time), ordered by user id so that a detector sees the same rows in the same order on
-- every run.
SELECT * EXCEPT (partition_date)
FROM user_behaviour_features
WHERE partition_date = @partition_date AND client_id IN UNNEST(@client_ids)
ORDER BY client_id, user_id
