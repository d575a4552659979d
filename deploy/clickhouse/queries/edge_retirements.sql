SELECT edge, toUInt8(argMax(retired, changed_ms)) AS is_retired, toUInt64(max(changed_ms)) AS changed_at_ms
FROM tally.edge_retirements
GROUP BY edge
ORDER BY edge
