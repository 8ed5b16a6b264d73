-- Events per client and day from @days days before @first_date to @last_date, for the volume
-- check of each day of @first_date..@last_date against the days before it.
SELECT client_id, partition_date, COUNT(*) AS events
FROM raw_events
WHERE partition_date >= DATE_SUB(@first_date, INTERVAL @days DAY) AND partition_date <= @last_date
  AND client_id IN UNNEST(@client_ids)
GROUP BY client_id, partition_date
