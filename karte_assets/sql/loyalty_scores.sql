-- Rank, decile and coupon tier of every raw score of @partition_date (loyalty_raw_scores).
-- Rank 1 is the highest score, ties broken by user id, so the same scores always give the same
-- tiers; decile = ceil(rank * 10 / @audience); tier A down to rank @tier_a_rank, B down to
-- @tier_b_rank (computed from the audience and the tier shares in karte_assets/tiers.py).
-- model_date: the day @model_version was trained, from the registry (NULL for the baseline).
WITH ranked AS (
  SELECT
    user_id,
    loyal_score,
    ROW_NUMBER() OVER (ORDER BY loyal_score DESC, user_id) AS score_rank
  FROM loyalty_raw_scores
  WHERE partition_date = @partition_date
    -- @exclude_flagged: leave out the users flagged as anomalous that day (user_anomaly_scores).
    AND NOT (@exclude_flagged AND user_id IN (
      SELECT user_id FROM user_anomaly_scores WHERE partition_date = @partition_date AND flagged
    ))
)
SELECT
  user_id,
  loyal_score,
  score_rank,
  CAST(CEIL(score_rank * 10 / @audience) AS INT64) AS score_decile,
  CASE
    WHEN score_rank <= @tier_a_rank THEN 'A'
    WHEN score_rank <= @tier_b_rank THEN 'B'
    ELSE 'none'
  END AS coupon_tier,
  @model_version AS model_version,
  (
    SELECT MAX(partition_date) FROM loyalty_model WHERE model_version = @model_version AND status = 'trained'
  ) AS model_date
FROM ranked
