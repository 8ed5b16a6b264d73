-- Units sold per product on the day partition_date, one row per client and product with a sale
-- (sql/daily_demand.sql writes it).
CREATE TABLE IF NOT EXISTS daily_demand (
  partition_date DATE,
  client_id STRING NOT NULL,
  product_id STRING,
  quantity FLOAT64,      -- units: the purchases' quantity column, or 1 per purchase without one
  purchases INT64
)
PARTITION BY partition_date
CLUSTER BY client_id, product_id
