//! The pieces of the `tally` binary that tests reuse: starting a local POP
//! as real processes ([`pop`]) and generating clicks ([`traffic`]).

pub mod pop;
pub mod traffic;
