//! Reading the TOML files Tally's processes are configured with.

use std::path::Path;

use serde::de::DeserializeOwned;

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
