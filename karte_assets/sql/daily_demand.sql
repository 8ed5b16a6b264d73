-- Units sold per client of @client_ids and product on @partition_date, from the purchases' extra
-- columns (raw_events.properties): the product at @product_path, the quantity at @quantity_path, or 1
-- per purchase where that is '$' (the whole object, never a number). Purchases without a product or
-- a numeric quantity are left out (sql/daily_demand_quality.sql counts them).
SELECT
  client_id,
  product_id,
  SUM(quantity) AS quantity,
  COUNT(*) AS purchases
FROM (
  SELECT
    client_id,
    JSON_VALUE(properties, @product_path) AS product_id,
    IF(@quantity_path = '$', 1.0, SAFE_CAST(JSON_VALUE(properties, @quantity_path) AS FLOAT64)) AS quantity
  FROM raw_events
  WHERE partition_date = @partition_date AND client_id IN UNNEST(@client_ids) AND event_name = 'purchase'
)
WHERE product_id IS NOT NULL AND quantity IS NOT NULL
GROUP BY client_id, product_id
