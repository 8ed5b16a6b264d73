-- How many users the audience of @partition_date has: every user of user_features that day.
SELECT COUNT(*) AS users
FROM user_features
WHERE partition_date = @partition_date
