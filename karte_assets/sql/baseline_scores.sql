-- Scores of @partition_date before any model: each user's percentile rank of purchases_90d in
-- (0, 1], ties given their average rank (pandas' rank(pct=True)), as the baseline the model must beat.
WITH audience AS (
  SELECT user_id, COALESCE(purchases_90d, 0) AS purchases_90d
  FROM user_features
  WHERE partition_date = @partition_date
)
SELECT
  user_id,
  (RANK() OVER (ORDER BY purchases_90d) + CAST(COUNT(*) OVER (PARTITION BY purchases_90d) - 1 AS FLOAT64) / 2)
    / COUNT(*) OVER () AS loyal_score
FROM audience
