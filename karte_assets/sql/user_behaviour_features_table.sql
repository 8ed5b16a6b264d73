-- Behaviour features of every user active on the day partition_date, per client, for anomaly
-- detection (sql/user_behaviour_features.sql writes it; karte_assets/anomaly reads it).
CREATE TABLE IF NOT EXISTS user_behaviour_features (
  partition_date DATE,
  client_id STRING NOT NULL,
  user_id STRING,
  events INT64,
  events_per_active_hour FLOAT64,   -- events per hour from the first to the last event (at least a minute)
  peak_events_per_minute INT64,     -- events in the user's busiest clock minute
  active_hours INT64,               -- distinct UTC hours with an event
  gaps INT64,                       -- gaps between consecutive events (events - 1)
  mean_gap_seconds FLOAT64,
  min_gap_seconds FLOAT64,
  gap_cv FLOAT64,                   -- stddev / mean of the gaps: 0 = machine timing, ~1 = human
  modal_gap_count INT64,            -- gaps of the most common length (whole seconds)
  modal_gap_share FLOAT64,          -- modal_gap_count / gaps (0 under two gaps)
  view_share FLOAT64,
  click_share FLOAT64,
  cart_share FLOAT64,
  purchase_share FLOAT64,
  sessions INT64,
  events_per_session FLOAT64,
  mean_session_seconds FLOAT64,
  max_session_events INT64,
  purchases INT64,
  revenue FLOAT64,
  repeated_value_share FLOAT64,     -- 1 - distinct purchase amounts / purchases
  history_days INT64,               -- active days in the previous window (user_daily_activity)
  events_vs_history FLOAT64,        -- (events + 1) / (mean events of those days + 1)
  purchases_vs_history FLOAT64
)
PARTITION BY partition_date
CLUSTER BY client_id, user_id
