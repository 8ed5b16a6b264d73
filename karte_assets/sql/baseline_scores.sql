-- Scores of @partition_date before any model, per client of @client_ids: each user's percentile
-- rank of purchases_90d among the client's users in (0, 1], ties given their average rank (pandas'
-- rank(pct=True)), as the baseline the model must beat.
WITH audience AS (
  SELECT client_id, user_id, COALESCE(purchases_90d, 0) AS purchases_90d
  FROM user_features
  WHERE partition_date = @partition_date AND client_id IN UNNEST(@client_ids)
)
SELECT
  client_id,
  user_id,
  (RANK() OVER (PARTITION BY client_id ORDER BY purchases_90d)
    + CAST(COUNT(*) OVER (PARTITION BY client_id, purchases_90d) - 1 AS FLOAT64) / 2)
    / COUNT(*) OVER (PARTITION BY client_id) AS loyal_score
FROM audience
