-- Users per client and loyalty score bin of width 1/@bins on @partition_date (bin @bins - 1 includes a score of 1).
SELECT
  client_id,
  LEAST(CAST(FLOOR(loyal_score * @bins) AS INT64), @bins - 1) AS score_bin,
  COUNT(*) AS users
FROM loyalty_scores
WHERE partition_date = @partition_date AND client_id IN UNNEST(@client_ids)
GROUP BY client_id, score_bin
ORDER BY client_id, score_bin
