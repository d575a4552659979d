SELECT
    edge,
    seq,
    toUInt64(max(clicks)) AS manifest_clicks,
    toUInt32(max(click_records)) AS manifest_records,
    toUInt32(min(min_second)) AS lo,
    toUInt32(max(max_second)) AS hi
FROM tally.batches
WHERE state = 2 AND max_second >= ? AND min_second < ?
GROUP BY edge, seq
ORDER BY edge, seq
