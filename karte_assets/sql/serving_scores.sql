-- What the lookup service serves of @partition_date for the clients @client_ids (a snapshot holds
-- one): every scored user's score and coupon tier, and the anomaly verdict of @anomaly_date (the
-- client's newest anomaly day on or before @partition_date): flagged TRUE or FALSE for a user the
-- anomaly template scored that day, NULL for one it did not (inactive that day). Before the
-- client's first anomaly day the caller passes @partition_date, which has no anomaly partition:
-- every verdict is NULL. model_version: the model the scores came from (the publisher checks it).
SELECT s.user_id, s.loyal_score, s.coupon_tier, a.flagged, s.model_version
FROM loyalty_scores AS s
LEFT JOIN (
  SELECT client_id, user_id, flagged
  FROM user_anomaly_scores
  WHERE partition_date = @anomaly_date AND client_id IN UNNEST(@client_ids)
) AS a
  ON a.client_id = s.client_id AND a.user_id = s.user_id
WHERE s.partition_date = @partition_date AND s.client_id IN UNNEST(@client_ids)
