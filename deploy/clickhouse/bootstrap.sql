-- Tally bootstrap: creates the database and the migration ledger that the
-- service's migration runner reads before applying migrations/NNNN_*.sql in order.
-- Idempotent (IF NOT EXISTS); portable to ClickHouse 18.16 and modern releases.
CREATE DATABASE IF NOT EXISTS tally;
CREATE TABLE IF NOT EXISTS tally.schema_migrations
(
    version UInt32,
    name String,
    applied_at DateTime('UTC')
)
ENGINE = MergeTree
ORDER BY version;
