-- Rank, decile and coupon tier of every raw score of @partition_date (loyalty_raw_scores) of the
-- clients @client_ids, each client ranked on its own. Rank 1 is the highest score, ties broken by
-- user id, so the same scores always give the same tiers; decile = ceil(rank * 10 / audience);
-- tier A down to rank floor(audience * @tier_a_share), B down to floor(audience * (@tier_a_share +
-- @tier_b_share)) (as karte_assets/tiers.py). The model version is the client's newest accepted
-- model up to the day, the one the raw scores came from, or @baseline_version before any;
-- model_date is the day it was trained (NULL for the baseline).
WITH ranked AS (
  SELECT
    client_id,
    user_id,
    loyal_score,
    ROW_NUMBER() OVER (PARTITION BY client_id ORDER BY loyal_score DESC, user_id) AS score_rank,
    COUNT(*) OVER (PARTITION BY client_id) AS audience
  FROM loyalty_raw_scores AS s
  WHERE partition_date = @partition_date AND client_id IN UNNEST(@client_ids)
    -- @exclude_flagged: leave out the client's users flagged as anomalous that day (user_anomaly_scores).
    AND NOT (@exclude_flagged AND EXISTS (
      SELECT 1 FROM user_anomaly_scores AS a
      WHERE a.partition_date = @partition_date AND a.flagged
        AND a.client_id = s.client_id AND a.user_id = s.user_id
    ))
),
models AS (
  SELECT client_id, model_version, model_date
  FROM (
    SELECT
      client_id,
      model_version,
      partition_date AS model_date,
      ROW_NUMBER() OVER (PARTITION BY client_id ORDER BY partition_date DESC) AS newest
    FROM loyalty_model
    WHERE partition_date <= @partition_date AND status = 'trained' AND client_id IN UNNEST(@client_ids)
  )
  WHERE newest = 1
)
SELECT
  r.client_id,
  r.user_id,
  r.loyal_score,
  r.score_rank,
  CAST(CEIL(r.score_rank * 10 / r.audience) AS INT64) AS score_decile,
  CASE
    WHEN r.score_rank <= FLOOR(r.audience * @tier_a_share) THEN 'A'
    WHEN r.score_rank <= FLOOR(r.audience * (@tier_a_share + @tier_b_share)) THEN 'B'
    ELSE 'none'
  END AS coupon_tier,
  COALESCE(m.model_version, @baseline_version) AS model_version,
  m.model_date
FROM ranked AS r
LEFT JOIN models AS m ON m.client_id = r.client_id
