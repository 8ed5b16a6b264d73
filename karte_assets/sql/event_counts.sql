-- Events and users per client and event name on @partition_date.
SELECT client_id, event_name, COUNT(*) AS events, COUNT(DISTINCT user_id) AS users
FROM raw_events
WHERE partition_date = @partition_date AND client_id IN UNNEST(@client_ids)
GROUP BY client_id, event_name
ORDER BY client_id, events DESC
