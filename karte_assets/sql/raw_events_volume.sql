-- Events per day over the @days days before @partition_date, for the volume check.
SELECT partition_date, COUNT(*) AS events
FROM raw_events
WHERE partition_date >= DATE_SUB(@partition_date, INTERVAL @days DAY) AND partition_date < @partition_date
GROUP BY partition_date
