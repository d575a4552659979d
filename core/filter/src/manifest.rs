//! What the central registry tells edges to run: per tenant, the active
//! plugin version and an optional candidate in rollout. Edges fetch it as
//! JSON and fetch each version's component by its sha256, which they
//! verify before compiling it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::host::{FailurePolicy, Limits, MAX_MEMORY_BYTES};

/// How manifests name components: lowercase hex sha256 of their bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

/// Whether `s` is such a name (64 lowercase hex digits), so safe in a path.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Manifest {
    pub tenants: Vec<TenantPlugins>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantPlugins {
    pub tenant: String,
    pub policy: FailurePolicy,
    /// A tenant without an active version is not in the manifest.
    pub active: VersionRef,
    pub candidate: Option<Candidate>,
    /// The tenant's own limits; edges cap them at their configured maxima.
    #[serde(default)]
    pub limits: Option<TenantLimits>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantLimits {
    pub memory_mb: u32,
    pub timeout_ms: u32,
    /// Output: tags per click on average, at most the contract's maximum.
    #[serde(default = "max_tags_per_click")]
    pub tags_per_click: u32,
}

fn max_tags_per_click() -> u32 {
    crate::answer::MAX_TAGS_PER_CLICK as u32
}

impl TenantLimits {
    /// What an edge gives a plugin unless its config says otherwise. The
    /// registry validates versions at these (or the tenant's lower ones), so
    /// an edge with default limits can start every version it is handed.
    pub const DEFAULT_MEMORY_MB: u32 = 64;
    pub const DEFAULT_TIMEOUT_MS: u32 = 100;
    /// [`Self::DEFAULT_MEMORY_MB`] and [`Self::DEFAULT_TIMEOUT_MS`] as host limits.
    pub const DEFAULT_LIMITS: Limits = Limits::new((Self::DEFAULT_MEMORY_MB as usize) << 20, Duration::from_millis(Self::DEFAULT_TIMEOUT_MS as u64));
    /// The most the host gives any instance (its pool's memory size).
    pub const MAX_MEMORY_MB: u32 = (MAX_MEMORY_BYTES >> 20) as u32;
    pub const MAX_TIMEOUT_MS: u32 = 10_000;

    pub fn check(&self) -> Result<(), String> {
        if !(1..=Self::MAX_MEMORY_MB).contains(&self.memory_mb)
            || !(1..=Self::MAX_TIMEOUT_MS).contains(&self.timeout_ms)
            || self.tags_per_click > max_tags_per_click()
        {
            return Err(format!(
                "memory_mb must be 1-{}, timeout_ms 1-{} and tags_per_click 0-{}",
                Self::MAX_MEMORY_MB,
                Self::MAX_TIMEOUT_MS,
                max_tags_per_click()
            ));
        }
        Ok(())
    }

    pub fn limits(&self) -> Limits {
        Limits {
            memory_bytes: (self.memory_mb as usize) << 20,
            timeout: Duration::from_millis(self.timeout_ms as u64),
            tags_per_click: self.tags_per_click as usize,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRef {
    pub version: u32,
    /// Hex sha256 of the component's bytes.
    pub sha256: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "mode")]
pub enum Mode {
    /// Runs on every click; its verdicts are recorded, never applied.
    Shadow,
    /// Its verdicts apply to `percent` of clicks, chosen by click id (so a
    /// re-sent click takes the same side).
    Canary { percent: u8 },
}

impl Mode {
    pub const fn kind(self) -> ModeKind {
        match self {
            Mode::Shadow => ModeKind::Shadow,
            Mode::Canary { .. } => ModeKind::Canary,
        }
    }
}

/// A [`Mode`] without a canary's share: what a recorded comparison (a
/// verdict row) says of its rollout. One byte on the wire and in the WAL
/// (`tally_model::batch::MODE_SHADOW`, `MODE_CANARY`); [`ModeKind::as_u8`]
/// and `TryFrom<u8>` are the only conversions, and an unknown byte is an
/// error, never a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ModeKind {
    Shadow,
    Canary,
}

impl ModeKind {
    pub const fn as_u8(self) -> u8 {
        match self {
            ModeKind::Shadow => 1,
            ModeKind::Canary => 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown rollout mode {0}")]
pub struct UnknownMode(pub u8);

impl TryFrom<u8> for ModeKind {
    type Error = UnknownMode;

    fn try_from(byte: u8) -> Result<ModeKind, UnknownMode> {
        [ModeKind::Shadow, ModeKind::Canary].into_iter().find(|k| k.as_u8() == byte).ok_or(UnknownMode(byte))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    #[serde(flatten)]
    pub version: VersionRef,
    #[serde(flatten)]
    pub mode: Mode,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mode_kind_is_one_byte_both_ways_and_nothing_else_is_one() {
        for kind in [ModeKind::Shadow, ModeKind::Canary] {
            assert_eq!(ModeKind::try_from(kind.as_u8()), Ok(kind));
        }
        for byte in (0..=u8::MAX).filter(|b| ![1, 2].contains(b)) {
            assert_eq!(ModeKind::try_from(byte), Err(UnknownMode(byte)));
        }
        assert_eq!((Mode::Shadow.kind(), Mode::Canary { percent: 5 }.kind()), (ModeKind::Shadow, ModeKind::Canary));
    }
}
