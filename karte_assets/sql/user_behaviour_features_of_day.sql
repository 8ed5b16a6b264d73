-- One client's behaviour features of @partition_date, ordered by user id so that a detector sees
-- the same rows in the same order on every run.
SELECT * EXCEPT (partition_date)
FROM user_behaviour_features
WHERE partition_date = @partition_date AND client_id = @client_id
ORDER BY user_id
