//! Why a request got no answer from its tenant's filter. Every kind follows
//! the tenant's policy; the message is what the client of a fail-closed
//! tenant reads in its `503`, and what the logs say.

use tally_filter::failure::Failure;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoAnswer {
    /// A call of a live version failed (see [`Failure`] for the kinds).
    #[error("plugin {plugin} (version {version}) {}", what_happened(.failure))]
    Call { plugin: String, version: u32, failure: Failure },
    /// The version could not be compiled or fetched: nothing to call.
    #[error("{0}")]
    NotLoaded(String),
    /// The host panicked inside a call of this version: its instance is never trusted again.
    #[error("plugin version {version} is unusable after a host panic")]
    Poisoned { version: u32 },
    #[error("the filter host panicked")]
    HostPanicked,
    /// The runtime is shutting down.
    #[error("the filter runner stopped before this request's turn")]
    RunnerStopped,
}

fn what_happened(failure: &Failure) -> String {
    match failure {
        Failure::Quarantined => format!("is {failure}"),
        Failure::NoCapacity(_) => format!("could not run: {failure}"),
        _ => format!("failed: {failure}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_plugin_and_what_happened() {
        let call = |failure| NoAnswer::Call { plugin: "bot".into(), version: 3, failure }.to_string();
        assert_eq!(call(Failure::Quarantined), "plugin bot (version 3) is quarantined after repeated failures");
        assert_eq!(call(Failure::NoCapacity("no slot".into())), "plugin bot (version 3) could not run: no slot");
        assert_eq!(call(Failure::Trap("unreachable".into())), "plugin bot (version 3) failed: unreachable");
        assert_eq!(call(Failure::CannotStart("oops".into())), "plugin bot (version 3) failed: instantiating: oops");
    }
}
