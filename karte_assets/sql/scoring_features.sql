-- The audience to score on each day from @first_partition_date to @last_partition_date for the
-- clients @client_ids: every user each has seen up to that day, with their features, day by day.
SELECT *
FROM user_features
WHERE partition_date BETWEEN @first_partition_date AND @last_partition_date
  AND client_id IN UNNEST(@client_ids)
ORDER BY partition_date, client_id, user_id
