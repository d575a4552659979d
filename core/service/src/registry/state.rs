//! One tenant's plugins and rollout, as plain state with checked
//! transitions (sans-IO: the shell in `mod.rs` stores it).

use serde::{Deserialize, Serialize};

use tally_filter::host::FailurePolicy;
use tally_filter::manifest::{Candidate, Mode, TenantLimits, TenantPlugins, VersionRef};

/// One uploaded version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub version: u32,
    pub sha256: String,
    pub bytes: u64,
    /// What the uploader called it (file name), informational.
    pub name: String,
    pub uploaded_ms: u64,
}

/// Everything the registry knows about one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TenantState {
    pub versions: Vec<Version>,
    pub active: Option<u32>,
    pub candidate: Option<CandidateState>,
    pub policy: FailurePolicy,
    /// Memory and time per call for this tenant's plugins; `None`: the edges' defaults.
    #[serde(default)]
    pub limits: Option<TenantLimits>,
}

/// The version in rollout and how (`{"version": 2, "mode": "canary", "percent": 10}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateState {
    pub version: u32,
    #[serde(flatten)]
    pub mode: Mode,
}

/// A rollout step a tenant's admin asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", tag = "action")]
pub enum Action {
    /// Make a version active right away (no candidate left).
    Activate { version: u32 },
    /// Run a version next to the active one, verdicts recorded only.
    Shadow { version: u32 },
    /// Apply a version's verdicts to `percent` (1-100) of clicks.
    Canary { version: u32, percent: u8 },
    /// The candidate becomes the active version.
    Promote,
    /// Drop the candidate; the active version carries on alone.
    Rollback,
    /// What the tenant's batches get when a plugin fails.
    Policy { policy: FailurePolicy },
    /// Memory (MiB) and time (ms per call) for the tenant's plugins; edges
    /// cap them at their own configured maxima.
    Limits {
        memory_mb: u32,
        timeout_ms: u32,
        /// Output: tags per click on average (default: the contract's maximum).
        tags_per_click: Option<u32>,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RolloutError {
    #[error("no version {0} (upload it first)")]
    UnknownVersion(u32),
    #[error("canary percent must be 1-100, not {0}")]
    Percent(u8),
    #[error("nothing in rollout: shadow or canary a version first")]
    NoCandidate,
    #[error("version {0} is already active")]
    AlreadyActive(u32),
    #[error("a shadow or canary needs an active version to compare with; activate one first")]
    NoActive,
    #[error("limits: {0}")]
    Limits(String),
}

impl TenantState {
    /// Records an upload; the same bytes uploaded again are the same version.
    pub fn push(&mut self, sha256: &str, bytes: u64, name: &str, now_ms: u64) -> (u32, bool) {
        if let Some(v) = self.versions.iter().find(|v| v.sha256 == sha256) {
            return (v.version, false);
        }
        let version = self.versions.last().map_or(1, |v| v.version + 1);
        self.versions.push(Version { version, sha256: sha256.to_string(), bytes, name: name.to_string(), uploaded_ms: now_ms });
        (version, true)
    }

    pub fn apply(&mut self, action: Action) -> Result<(), RolloutError> {
        let known = |v: u32| if self.versions.iter().any(|x| x.version == v) { Ok(v) } else { Err(RolloutError::UnknownVersion(v)) };
        match action {
            Action::Activate { version } => {
                self.active = Some(known(version)?);
                self.candidate = None;
            }
            Action::Shadow { version } | Action::Canary { version, .. } => {
                let version = known(version)?;
                let active = self.active.ok_or(RolloutError::NoActive)?;
                if active == version {
                    return Err(RolloutError::AlreadyActive(version));
                }
                let mode = match action {
                    Action::Canary { percent, .. } if !(1..=100).contains(&percent) => return Err(RolloutError::Percent(percent)),
                    Action::Canary { percent, .. } => Mode::Canary { percent },
                    _ => Mode::Shadow,
                };
                self.candidate = Some(CandidateState { version, mode });
            }
            Action::Promote => {
                let candidate = self.candidate.take().ok_or(RolloutError::NoCandidate)?;
                self.active = Some(candidate.version);
            }
            Action::Rollback => {
                self.candidate.take().ok_or(RolloutError::NoCandidate)?;
            }
            Action::Policy { policy } => self.policy = policy,
            Action::Limits { memory_mb, timeout_ms, tags_per_click } => {
                let tags_per_click = tags_per_click.unwrap_or(tally_filter::answer::MAX_TAGS_PER_CLICK as u32);
                let limits = TenantLimits { memory_mb, timeout_ms, tags_per_click };
                limits.check().map_err(RolloutError::Limits)?;
                self.limits = Some(limits);
            }
        }
        Ok(())
    }

    fn reference(&self, version: u32) -> Option<VersionRef> {
        let v = self.versions.iter().find(|v| v.version == version)?;
        Some(VersionRef { version, sha256: v.sha256.clone() })
    }

    /// The versions edges run for this tenant: the active one and the candidate.
    pub fn running(&self) -> Vec<VersionRef> {
        self.active.into_iter().chain(self.candidate.map(|c| c.version)).filter_map(|v| self.reference(v)).collect()
    }

    /// Whether every version the state names exists (a state file edited
    /// by hand may say otherwise).
    pub fn is_consistent(&self) -> bool {
        self.active.is_none_or(|v| self.reference(v).is_some()) && self.candidate.is_none_or(|c| self.reference(c.version).is_some())
    }

    /// What edges run for this tenant, if anything.
    pub fn manifest(&self, tenant: &str) -> Option<TenantPlugins> {
        let active = self.reference(self.active?)?;
        let candidate = self.candidate.and_then(|c| Some(Candidate { version: self.reference(c.version)?, mode: c.mode }));
        Some(TenantPlugins { tenant: tenant.to_string(), policy: self.policy, active, candidate, limits: self.limits })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollout_walks_shadow_canary_promote_and_rollback() {
        let mut s = TenantState::default();
        assert_eq!(s.push("aa", 10, "v1.wasm", 1), (1, true));
        assert_eq!(s.push("bb", 10, "v2.wasm", 2), (2, true));
        assert_eq!(s.push("aa", 10, "again.wasm", 3), (1, false));
        assert_eq!(s.manifest("t"), None);
        assert_eq!(s.apply(Action::Shadow { version: 2 }), Err(RolloutError::NoActive));
        s.apply(Action::Activate { version: 1 }).unwrap();
        assert_eq!(s.apply(Action::Canary { version: 1, percent: 5 }), Err(RolloutError::AlreadyActive(1)));
        assert_eq!(s.apply(Action::Canary { version: 2, percent: 0 }), Err(RolloutError::Percent(0)));
        assert_eq!(s.apply(Action::Shadow { version: 3 }), Err(RolloutError::UnknownVersion(3)));
        s.apply(Action::Shadow { version: 2 }).unwrap();
        let m = s.manifest("t").unwrap();
        assert_eq!((m.active.version, m.candidate.unwrap().mode), (1, Mode::Shadow));
        s.apply(Action::Canary { version: 2, percent: 10 }).unwrap();
        s.apply(Action::Rollback).unwrap();
        assert_eq!(s.manifest("t").unwrap().candidate, None);
        assert_eq!(s.apply(Action::Promote), Err(RolloutError::NoCandidate));
        s.apply(Action::Canary { version: 2, percent: 10 }).unwrap();
        s.apply(Action::Promote).unwrap();
        assert_eq!((s.active, s.candidate), (Some(2), None));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["active"], 2);
        s.apply(Action::Canary { version: 1, percent: 7 }).unwrap();
        assert_eq!(serde_json::to_value(&s).unwrap()["candidate"], serde_json::json!({"version": 1, "mode": "canary", "percent": 7}));
        assert_eq!(serde_json::from_value::<TenantState>(serde_json::to_value(&s).unwrap()).unwrap(), s);
        s.apply(Action::Policy { policy: FailurePolicy::Closed }).unwrap();
        assert_eq!(s.manifest("t").unwrap().policy, FailurePolicy::Closed);
        assert!(matches!(s.apply(Action::Limits { memory_mb: 0, timeout_ms: 5, tags_per_click: None }), Err(RolloutError::Limits(_))));
        assert!(matches!(s.apply(Action::Limits { memory_mb: 8, timeout_ms: 5, tags_per_click: Some(5) }), Err(RolloutError::Limits(_))));
        s.apply(Action::Limits { memory_mb: 8, timeout_ms: 20, tags_per_click: None }).unwrap();
        assert_eq!(s.manifest("t").unwrap().limits, Some(TenantLimits { memory_mb: 8, timeout_ms: 20, tags_per_click: 4 }));
        s.apply(Action::Limits { memory_mb: 8, timeout_ms: 20, tags_per_click: Some(1) }).unwrap();
        assert_eq!(s.manifest("t").unwrap().limits.unwrap().limits().tags_per_click, 1);
    }
}
