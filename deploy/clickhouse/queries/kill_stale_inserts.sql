-- Fencing (core::lease::fence): a core that has just taken an edge's lease
-- stops every running Tally INSERT that names that edge at another epoch
-- (its query_id holds `|<edge>@<epoch>/`), and waits until they are gone.
-- By initial_query_id, so a Distributed insert's parts on other servers go too.
-- Binds: `|<edge>@`, `|<edge>@<epoch>/` (the new owner's own, spared).
KILL QUERY WHERE like(initial_query_id, 'tally|%') AND position(initial_query_id, ?) > 0 AND position(initial_query_id, ?) = 0 SYNC
