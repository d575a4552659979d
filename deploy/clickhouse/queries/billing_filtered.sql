SELECT
    toUInt32(toStartOfHour(toDateTime(intDiv(first_ts, 1000), 'UTC'))) AS hour,
    first_ad AS ad_id,
    toUInt64(count()) AS filtered
FROM
(
    SELECT
        id_hi,
        id_lo,
        argMin(ad_id, at) AS first_ad,
        argMin(ts_ms, at) AS first_ts
    FROM tally.refused_events
    WHERE tenant = ? AND intDiv(ts_ms, 1000) >= ? AND intDiv(ts_ms, 1000) < ? AND reason LIKE 'filtered:%'
    GROUP BY id_hi, id_lo
)
WHERE (id_hi, id_lo) NOT IN
(
    -- Only the filtered ids are looked up among the billed ones: a set of every billed
    -- id of the range made this query outlast the deadline at 20M click records.
    SELECT id_hi, id_lo
    FROM tally.click_records
    WHERE tenant = ? AND second >= ? AND second < ? AND verdict = 0 AND (id_hi, id_lo) IN
    (
        SELECT id_hi, id_lo
        FROM tally.refused_events
        WHERE tenant = ? AND intDiv(ts_ms, 1000) >= ? AND intDiv(ts_ms, 1000) < ? AND reason LIKE 'filtered:%'
    )
)
GROUP BY hour, ad_id
ORDER BY hour, ad_id
