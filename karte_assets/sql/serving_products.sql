-- What the lookup service serves of the products of the clients @client_ids (a snapshot holds one)
-- on the demand day @partition_date: each product of demand_forecast, its forecast and the sum of
-- its daily 95 % upper bounds over the horizon, and for an overstock candidate of that day its
-- stock on hand, excess and rank (NULL for the others).
WITH forecast AS (
  SELECT
    client_id,
    product_id,
    SUM(forecast) AS demand_forecast,
    SUM(hi_95) AS demand_hi_95,
    COUNT(*) AS horizon_days,
    ANY_VALUE(model_version) AS model_version
  FROM demand_forecast
  WHERE partition_date = @partition_date AND client_id IN UNNEST(@client_ids)
  GROUP BY client_id, product_id
)
SELECT
  f.product_id,
  f.demand_forecast,
  f.demand_hi_95,
  f.horizon_days,
  o.product_id IS NOT NULL AS overstock,
  o.stock_on_hand,
  o.stock_as_of,
  o.excess,
  o.excess_rank,
  f.model_version
FROM forecast AS f
LEFT JOIN (
  SELECT client_id, product_id, stock_on_hand, stock_as_of, excess, excess_rank
  FROM overstock_candidates
  WHERE partition_date = @partition_date AND client_id IN UNNEST(@client_ids)
) AS o
  ON o.client_id = f.client_id AND o.product_id = f.product_id
