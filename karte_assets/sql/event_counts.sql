-- Events and users per event name on @partition_date.
SELECT event_name, COUNT(*) AS events, COUNT(DISTINCT user_id) AS users
FROM raw_events
WHERE partition_date = @partition_date
GROUP BY event_name
ORDER BY events DESC
