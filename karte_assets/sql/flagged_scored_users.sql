-- Per client of @client_ids, how many of the users with a raw loyalty score on @partition_date were
-- flagged as anomalous that day: the users loyalty_scores leaves out when it excludes flagged users.
SELECT s.client_id, COUNT(*) AS users
FROM loyalty_raw_scores AS s
JOIN user_anomaly_scores AS a
  ON a.client_id = s.client_id AND a.user_id = s.user_id
WHERE s.partition_date = @partition_date AND s.client_id IN UNNEST(@client_ids)
  AND a.partition_date = @partition_date AND a.flagged
GROUP BY s.client_id
