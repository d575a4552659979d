-- The billing finalizer's change detector (core::billing::plan::batches_per_hour): the
-- batches whose event times reach into [from, to), per span of hours they cover: how many
-- are committed, how many open (state 1 only: inserting now, or cut off). A batch's click
-- records go in after its state 1 row and before its state 2 row, and the ledger is never
-- deleted from inside billing's lookback, so an hour no open batch reaches, with as many
-- committed batches as at the last pass, has no new click records.
SELECT
    first_hour,
    last_hour,
    toUInt64(countIf(top_state = 2)) AS committed,
    toUInt64(countIf(top_state < 2)) AS open
FROM
(
    SELECT
        toUInt32(toStartOfHour(min(min_second))) AS first_hour,
        toUInt32(toStartOfHour(max(max_second))) AS last_hour,
        max(state) AS top_state
    FROM tally.batches
    WHERE max_second >= ? AND min_second < ?
    GROUP BY edge, seq
)
GROUP BY first_hour, last_hour
ORDER BY first_hour, last_hour
