-- The purchases of @partition_date, and how many lack a product at @product_path or a numeric
-- quantity at @quantity_path ('$': no quantity column, every purchase counts 1).
SELECT
  COUNT(*) AS purchases,
  COUNTIF(JSON_VALUE(properties, @product_path) IS NULL) AS without_product,
  COUNTIF(
    @quantity_path != '$' AND SAFE_CAST(JSON_VALUE(properties, @quantity_path) AS FLOAT64) IS NULL
  ) AS without_quantity
FROM raw_events
WHERE partition_date = @partition_date AND event_name = 'purchase'
