-- The loyalty score of every user seen up to the day partition_date, with their rank, decile and
-- coupon tier (written from the scored rows by the loyalty_scores asset).
CREATE TABLE IF NOT EXISTS loyalty_scores (
  partition_date DATE,
  client_id STRING NOT NULL,
  user_id STRING,
  loyal_score FLOAT64,    -- 0..1
  score_rank INT64,       -- 1 = most loyal
  score_decile INT64,     -- 1..10
  coupon_tier STRING,     -- A, B or none
  model_version STRING,   -- the accepted model that scored the day, or baseline:<feature>
  model_date DATE         -- the day that model was trained (NULL for the baseline)
)
PARTITION BY partition_date
CLUSTER BY client_id, user_id
