-- How many of the users with a raw loyalty score on @partition_date were flagged as anomalous that
-- day: the users loyalty_scores leaves out when it excludes flagged users.
SELECT COUNT(*) AS users
FROM loyalty_raw_scores
WHERE partition_date = @partition_date
  AND user_id IN (SELECT user_id FROM user_anomaly_scores WHERE partition_date = @partition_date AND flagged)
