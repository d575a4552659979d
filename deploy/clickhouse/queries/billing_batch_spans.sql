-- The billing finalizer's change detector (core::billing::plan::batches_per_hour): the
-- committed batches whose event times reach into [from, to), counted per span of hours
-- they cover. The ledger only grows (a batch's state 2 row is written after all its click
-- records, and is never deleted inside billing's lookback), so an hour whose count is
-- unchanged since the last pass has no new click records.
SELECT
    toUInt32(toStartOfHour(min_second)) AS first_hour,
    toUInt32(toStartOfHour(max_second)) AS last_hour,
    toUInt64(uniqExact(edge, seq)) AS batches
FROM tally.batches
WHERE state = 2 AND max_second >= ? AND min_second < ?
GROUP BY first_hour, last_hour
ORDER BY first_hour, last_hour
