-- The committer's deadline (core::clickhouse::stalled): a core without edge leases stops every
-- Tally INSERT, and waits for them, before its first probe, so an INSERT of an earlier run of
-- it (left hanging on a stopped server) cannot land after that probe.
-- By initial_query_id, so a Distributed insert's parts on other servers go too.
KILL QUERY WHERE like(initial_query_id, 'tally|%') SYNC
