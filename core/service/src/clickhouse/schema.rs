//! Versioned schema migrations: `deploy/clickhouse/bootstrap.sql` then every
//! `deploy/clickhouse/migrations/NNNN_name.sql` not yet recorded in
//! `tally.schema_migrations`, in order. Every statement is idempotent
//! (`IF NOT EXISTS`), so a crash between applying and recording a migration
//! is repaired by applying it again.

pub const BOOTSTRAP: &str = include_str!("../../../../deploy/clickhouse/bootstrap.sql");

pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! migration {
    ($version:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../../../../deploy/clickhouse/migrations/", stringify!($version), "_", $name, ".sql")),
        }
    };
}

/// Applied at every start on servers that support `insert_deduplication_token`
/// (deduplication windows, then per-column codecs).
pub const MODERN: &[&str] = &[
    include_str!("../../../../deploy/clickhouse/modern/0001_dedup_window.sql"),
    include_str!("../../../../deploy/clickhouse/modern/0002_dedup_window_filters.sql"),
    include_str!("../../../../deploy/clickhouse/modern/0003_codecs.sql"),
    include_str!("../../../../deploy/clickhouse/modern/0004_dedup_window_campaigns.sql"),
    include_str!("../../../../deploy/clickhouse/modern/0005_dedup_window_dimension_values.sql"),
];

/// In order; a test checks this list against the directory.
pub const MIGRATIONS: &[Migration] = &[
    migration!(0001, "landing"),
    migration!(0002, "rollups"),
    migration!(0003, "batches"),
    migration!(0004, "billing"),
    migration!(0005, "filters"),
    migration!(0006, "compact_storage"),
    migration!(0007, "campaign_rollups"),
    migration!(0008, "edge_retirements"),
    migration!(0009, "plugin_components"),
    migration!(0010, "dimension_value_rollups"),
];

/// Splits a file into statements: each ends with `;` at the end of a line;
/// lines holding only a `--` comment are dropped.
pub fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = String::new();
    for line in sql.lines() {
        if line.trim_start().starts_with("--") {
            continue;
        }
        buf.push_str(line);
        buf.push('\n');
        if line.trim_end().ends_with(';') {
            let stmt = buf.trim().trim_end_matches(';').trim().to_string();
            if !stmt.is_empty() {
                out.push(stmt);
            }
            buf.clear();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_matches_directory() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/clickhouse/migrations");
        let mut files: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).filter(|n| n.ends_with(".sql")).collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS.iter().map(|m| format!("{:04}_{}.sql", m.version, m.name)).collect();
        assert_eq!(files, listed);
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
        for m in MIGRATIONS {
            assert!(!statements(m.sql).is_empty());
        }
    }

    #[test]
    fn modern_list_matches_directory() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/clickhouse/modern");
        assert_eq!(std::fs::read_dir(dir).unwrap().count(), MODERN.len());
    }

    #[test]
    fn splits_statements() {
        let sql = "-- c\nCREATE TABLE a\n(x UInt8);\n-- d\nCREATE VIEW b AS SELECT 1;\n";
        assert_eq!(statements(sql), vec!["CREATE TABLE a\n(x UInt8)".to_string(), "CREATE VIEW b AS SELECT 1".into()]);
        assert_eq!(statements(BOOTSTRAP).len(), 2);
    }
}
