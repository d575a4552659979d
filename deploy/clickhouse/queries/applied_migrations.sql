-- Readiness: which schema migrations this server has recorded.
SELECT DISTINCT version FROM tally.schema_migrations ORDER BY version
