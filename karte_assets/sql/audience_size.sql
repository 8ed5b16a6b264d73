-- How many users the audience of @partition_date has, per client of @client_ids: every user of user_features that day.
SELECT client_id, COUNT(*) AS users
FROM user_features
WHERE partition_date = @partition_date AND client_id IN UNNEST(@client_ids)
GROUP BY client_id
