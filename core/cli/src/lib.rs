//! The pieces of the `tally` binary that tests reuse: starting a local POP
//! as real processes ([`pop`]), generating clicks ([`traffic`]) and a private
//! ZooKeeper ([`zookeeper`]) and a private ClickHouse cluster ([`cluster`]).

pub mod cluster;
pub mod pop;
pub mod traffic;
pub mod zookeeper;
