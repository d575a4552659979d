-- 0009 plugin components shared by every core (issue 10: any core serves the
-- registry). The bytes of each uploaded component by sha256, written once before
-- any rollout state names it (the rollout state itself lives in ZooKeeper, which
-- can compare versions; its 1 MB node limit rules components out). Only cores
-- with a [zookeeper] section use it; each core's registry directory is a cache.
-- Bounded by registry.max_plugin_bytes per row; edges verify the sha256 anyway.
CREATE TABLE IF NOT EXISTS tally.plugin_components
(
    sha256 String,
    bytes Array(UInt8),
    stored_ms UInt64
)
ENGINE = ReplacingMergeTree(stored_ms)
ORDER BY sha256;
