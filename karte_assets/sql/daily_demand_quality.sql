-- Per client of @client_ids: the purchases of @partition_date, and how many lack a product at
-- @product_path or a numeric quantity at @quantity_path ('$': no quantity column, every purchase
-- counts 1). A client without purchases that day has no row.
SELECT
  client_id,
  COUNT(*) AS purchases,
  COUNTIF(JSON_VALUE(properties, @product_path) IS NULL) AS without_product,
  COUNTIF(
    @quantity_path != '$' AND SAFE_CAST(JSON_VALUE(properties, @quantity_path) AS FLOAT64) IS NULL
  ) AS without_quantity
FROM raw_events
WHERE partition_date = @partition_date AND client_id IN UNNEST(@client_ids) AND event_name = 'purchase'
GROUP BY client_id
