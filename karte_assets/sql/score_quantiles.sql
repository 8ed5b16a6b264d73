-- Approximate 10th, 50th and 90th percentiles of the loyalty scores of @partition_date, per client.
SELECT
  client_id,
  APPROX_QUANTILES(loyal_score, 10)[OFFSET(1)] AS p10,
  APPROX_QUANTILES(loyal_score, 10)[OFFSET(5)] AS p50,
  APPROX_QUANTILES(loyal_score, 10)[OFFSET(9)] AS p90
FROM loyalty_scores
WHERE partition_date = @partition_date AND client_id IN UNNEST(@client_ids)
GROUP BY client_id
ORDER BY client_id
