-- Fencing (core::lease::fence): a core that has just taken an edge's lease
-- stops every running Tally INSERT that names that edge at another epoch
-- (its query_id holds `|<edge>@<epoch>/`), and waits until they are gone.
-- Binds: `|<edge>@`, `|<edge>@<epoch>/` (the new owner's own, spared).
KILL QUERY WHERE like(query_id, 'tally|%') AND position(query_id, ?) > 0 AND position(query_id, ?) = 0 SYNC
