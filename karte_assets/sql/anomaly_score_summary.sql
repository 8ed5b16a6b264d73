-- Per client of @client_ids on @partition_date: users scored, users flagged, and the lowest flagged score.
SELECT
  client_id,
  COUNT(*) AS users,
  COUNTIF(flagged) AS flagged,
  MIN(IF(flagged, anomaly_score, NULL)) AS lowest_flagged_score
FROM user_anomaly_scores
WHERE partition_date = @partition_date AND client_id IN UNNEST(@client_ids)
GROUP BY client_id
ORDER BY client_id
