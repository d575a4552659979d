-- The committer's deadline (core::clickhouse::stalled): an INSERT that got no answer in time is
-- stopped, and waited for, before any batch is probed again, so it cannot land after the probe.
-- By initial_query_id, so a Distributed insert's parts on other servers go too.
-- Bind: the INSERT's query_id.
KILL QUERY WHERE initial_query_id = ? SYNC
