-- Events per client and day over the @days days before @partition_date, for the volume check.
SELECT client_id, partition_date, COUNT(*) AS events
FROM raw_events
WHERE partition_date >= DATE_SUB(@partition_date, INTERVAL @days DAY) AND partition_date < @partition_date
  AND client_id IN UNNEST(@client_ids)
GROUP BY client_id, partition_date
