-- Lifetime state per user, carried from one day to the next (declared, since user_profile reads itself).
CREATE TABLE IF NOT EXISTS user_profile (
  partition_date DATE,
  client_id STRING NOT NULL,
  user_id STRING,
  first_seen_date DATE,
  last_seen_date DATE,
  first_purchase_date DATE,
  last_purchase_date DATE,
  active_days INT64,
  events INT64,
  sessions INT64,
  views INT64,
  clicks INT64,
  carts INT64,
  purchases INT64,
  revenue FLOAT64,
  purchase_days INT64,             -- days with a purchase
  last_purchase_gap_days INT64,    -- days between the last two purchase days; NULL: fewer than two
  purchase_gap_square_sum FLOAT64  -- sum of the squared gaps between consecutive purchase days
)
PARTITION BY partition_date
CLUSTER BY client_id, user_id
