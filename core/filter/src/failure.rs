//! Why a filter call produced no answer, by kind. Callers decide on the
//! kind (whether it is the plugin's doing, so counts towards quarantine and
//! costs its instance) and show its message, which says what happened in
//! the engine's words.

use crate::answer::BadAnswer;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// [`crate::host::QUARANTINE_AFTER`] failures in a row: no more calls.
    #[error("quarantined after repeated failures")]
    Quarantined,
    /// Ran past its deadline (the epoch interrupt).
    #[error("{0}")]
    Timeout(String),
    /// Tried to grow its memory past its limit.
    #[error("{0}")]
    OutOfMemory(String),
    /// Trapped otherwise: a panic, `unreachable`, a call it is not granted.
    #[error("{0}")]
    Trap(String),
    /// Answered, but not in the contract's shape or within its limits.
    #[error(transparent)]
    BadAnswer(#[from] BadAnswer),
    /// Its instance could not be made: its start-up code failed, or it
    /// needs more than an instance slot holds.
    #[error("instantiating: {0}")]
    CannotStart(String),
    /// The engine had no instance slot free: not the plugin's doing.
    #[error("{0}")]
    NoCapacity(String),
}

impl Failure {
    /// Whether the plugin did it: counted towards quarantine, and the
    /// instance (which may be in any state) is rebuilt.
    pub fn is_plugins_doing(&self) -> bool {
        !matches!(self, Failure::Quarantined | Failure::NoCapacity(_))
    }
}
