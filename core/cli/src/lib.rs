//! The pieces of the `tally` binary that tests reuse: starting a local POP
//! as real processes ([`pop`]), generating clicks ([`traffic`]) and a private
//! ZooKeeper ([`zookeeper`]).

pub mod pop;
pub mod traffic;
pub mod zookeeper;
