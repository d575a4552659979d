SELECT edge, batch_seq AS seq, toUInt64(count()) AS records
FROM tally.click_records
WHERE second >= ? AND second <= ?
GROUP BY edge, seq
ORDER BY edge, seq
