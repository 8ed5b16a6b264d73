-- The audience to score on @partition_date: every user seen up to that day, with their features.
SELECT * EXCEPT (partition_date)
FROM user_features
WHERE partition_date = @partition_date
ORDER BY user_id
