-- Users per loyalty score bin of width 1/@bins on @partition_date (bin @bins - 1 includes a score of 1).
SELECT
  LEAST(CAST(FLOOR(loyal_score * @bins) AS INT64), @bins - 1) AS score_bin,
  COUNT(*) AS users
FROM loyalty_scores
WHERE partition_date = @partition_date
GROUP BY score_bin
ORDER BY score_bin
