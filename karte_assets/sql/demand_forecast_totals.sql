-- Each product's forecast units summed over the horizon of @partition_date's forecast, per client of
-- @client_ids: the point forecast and the 95 % upper bounds (a sum of daily bounds: above the bound
-- of the sum, so a product flagged against it is overstocked all the more).
SELECT
  client_id,
  product_id,
  SUM(forecast) AS demand_forecast,
  SUM(hi_95) AS demand_hi_95,
  ANY_VALUE(model_version) AS model_version
FROM demand_forecast
WHERE partition_date = @partition_date AND client_id IN UNNEST(@client_ids)
GROUP BY client_id, product_id
