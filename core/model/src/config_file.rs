//! Reading the TOML files Tally's processes are configured with, and
//! naming what differs between two readings of one ([`changed_keys`], for
//! the reload's log).

use std::collections::BTreeSet;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use toml::{Table, Value};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("config {path}: {message}")]
    Invalid { path: String, message: String },
}

impl ConfigError {
    pub fn invalid(path: &Path, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid { path: path.display().to_string(), message: message.into() }
    }
}

/// Reads and parses a TOML file, naming the file in every error.
pub fn load_toml<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.display().to_string(), source })?;
    toml::from_str(&text).map_err(|e| ConfigError::invalid(path, e.to_string()))
}

/// The keys whose values differ between two readings of one config, as the
/// operator finds them in the file: a top-level key, or `section.key` for a
/// key of a table (`[dedup]`); an array of tables (`[[edges]]`) is named
/// whole. Top-level keys in `skip` are left out. Compared as parsed, with
/// the defaults filled in, so a comment, a reordering or a default written
/// out is no change.
pub fn changed_keys<T: Serialize>(before: &T, after: &T, skip: &[&str]) -> Result<Vec<String>, toml::ser::Error> {
    let (before, after) = (Table::try_from(before)?, Table::try_from(after)?);
    let mut changed = Vec::new();
    for key in keys_of(&before, &after).filter(|k| !skip.contains(k)) {
        match (before.get(key), after.get(key)) {
            (Some(Value::Table(b)), Some(Value::Table(a))) => {
                changed.extend(keys_of(b, a).filter(|k| b.get(*k) != a.get(*k)).map(|k| format!("{key}.{k}")));
            }
            (b, a) if b != a => changed.push(key.to_string()),
            _ => {}
        }
    }
    Ok(changed)
}

/// The keys of either table, in order.
fn keys_of<'a>(a: &'a Table, b: &'a Table) -> impl Iterator<Item = &'a str> {
    a.keys().chain(b.keys()).map(String::as_str).collect::<BTreeSet<_>>().into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Clone)]
    struct Config {
        listen: String,
        token: Option<String>,
        dedup: Dedup,
        edges: Vec<Dedup>,
        limits: Dedup,
    }

    #[derive(Serialize, Clone)]
    struct Dedup {
        horizon_secs: u64,
        max_entries: Option<u64>,
    }

    #[test]
    fn names_changed_keys_and_section_keys_but_not_skipped_ones() {
        let dedup = Dedup { horizon_secs: 3600, max_entries: None };
        let a = Config { listen: "127.0.0.1:1".into(), token: None, dedup: dedup.clone(), edges: vec![dedup.clone()], limits: dedup.clone() };
        assert_eq!(changed_keys(&a, &a, &[]).unwrap(), Vec::<String>::new());
        let b = Config {
            listen: "127.0.0.1:2".into(),
            token: Some("t".into()),
            dedup: Dedup { max_entries: Some(5), ..dedup.clone() },
            edges: vec![Dedup { horizon_secs: 1, ..dedup.clone() }],
            limits: Dedup { horizon_secs: 1, ..dedup },
        };
        assert_eq!(changed_keys(&a, &b, &["limits"]).unwrap(), ["dedup.max_entries", "edges", "listen", "token"]);
        assert_eq!(changed_keys(&b, &a, &["limits", "listen", "token"]).unwrap(), ["dedup.max_entries", "edges"]);
    }
}
