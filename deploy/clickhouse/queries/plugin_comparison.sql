SELECT
    active_version,
    candidate_version,
    mode,
    applied_candidate,
    active_code,
    candidate_code,
    toUInt64(sum(clicks)) AS clicks
FROM tally.plugin_verdicts
WHERE tenant = ? AND minute >= ? AND minute < ?
GROUP BY active_version, candidate_version, mode, applied_candidate, active_code, candidate_code
ORDER BY active_version, candidate_version, mode, applied_candidate, active_code, candidate_code
