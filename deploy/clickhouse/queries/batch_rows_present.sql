SELECT toUInt8(0) AS part, row_idx
FROM tally.clicks_by_second
WHERE edge = ? AND batch_seq = ? AND second >= ? AND second <= ?
UNION ALL
SELECT toUInt8(1) AS part, row_idx
FROM tally.click_records
WHERE edge = ? AND batch_seq = ? AND second >= ? AND second <= ?
UNION ALL
SELECT toUInt8(2) AS part, row_idx
FROM tally.refused_events
WHERE edge = ? AND batch_seq = ? AND at >= ? AND at <= ?
UNION ALL
SELECT toUInt8(3) AS part, row_idx
FROM tally.click_dimensions
WHERE edge = ? AND batch_seq = ? AND second >= ? AND second <= ?
UNION ALL
SELECT toUInt8(4) AS part, row_idx
FROM tally.plugin_verdicts
WHERE edge = ? AND batch_seq = ? AND minute >= ? AND minute <= ?
