//! Names that fence a stale owner out: the lease node's name for an edge,
//! and the `query_id` every row INSERT carries, which names each batch's
//! `(edge, epoch, seqs)`, so a new owner can find and kill (SYNC) the
//! inserts of every other epoch for its edge before it commits
//! (`deploy/clickhouse/queries/kill_stale_inserts.sql`).
//!
//! ```text
//! query_id = tally|<part>|<edge>@<epoch>/<lo seq>-<hi seq>|<edge>@...|
//! ```
//! `|`, `@` and `/` never occur in a [`node_name`], so `|<edge>@` and
//! `|<edge>@<epoch>/` match exactly that edge and that epoch.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::state::Epoch;

/// The edge id as a ZooKeeper node name and in query ids: as it is when
/// it is plain (`[A-Za-z0-9._-]`, not `.` or `..`), else `~` and its bytes
/// in hex (plain names hold no `~`, so the two never collide).
pub fn node_name(edge: &str) -> String {
    let plain = !edge.is_empty() && edge != "." && edge != ".." && edge.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if plain {
        edge.to_string()
    } else {
        format!("~{}", hex::encode(edge.as_bytes()))
    }
}

/// The lease's path under the root.
pub fn lease_path(edge: &str) -> String {
    format!("leases/{}", node_name(edge))
}

/// The `query_id` of one INSERT of `part` carrying rows of these batches,
/// each `(edge, epoch, seq)`.
pub fn insert_query_id<'a>(part: u8, batches: impl IntoIterator<Item = (&'a str, Epoch, u64)>) -> String {
    let mut edges: BTreeMap<(&str, Epoch), (u64, u64)> = BTreeMap::new();
    for (edge, epoch, seq) in batches {
        let range = edges.entry((edge, epoch)).or_insert((seq, seq));
        range.0 = range.0.min(seq);
        range.1 = range.1.max(seq);
    }
    let mut id = format!("tally|{part}|");
    for ((edge, epoch), (lo, hi)) in edges {
        let _ = write!(id, "{}@{epoch}/{lo}-{hi}|", node_name(edge));
    }
    id
}

/// What `kill_stale_inserts.sql` binds: any insert naming `edge`, and
/// those naming it at `epoch` (which are spared).
pub fn stale_patterns(edge: &str, epoch: Epoch) -> (String, String) {
    let name = node_name(edge);
    (format!("|{name}@"), format!("|{name}@{epoch}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_or_hex_and_never_collide() {
        assert_eq!(node_name("pop-fra-1.a_b"), "pop-fra-1.a_b");
        assert_eq!(node_name("a/b"), "~612f62");
        assert_eq!(node_name(".."), "~2e2e");
        assert_eq!(node_name("~61"), "~7e3631");
        assert_eq!(lease_path("e1"), "leases/e1");
    }

    #[test]
    fn query_ids_name_each_edge_epoch_and_seq_range() {
        let id = insert_query_id(1, [("e2", 9, 4), ("e1", 7, 3), ("e2", 9, 2), ("e1|x", 7, 1)]);
        assert_eq!(id, "tally|1|e1@7/3-3|~65317c78@7/1-1|e2@9/2-4|");
        let (any, spared) = stale_patterns("e2", 9);
        assert!(id.contains(&any) && id.contains(&spared));
        let (any, spared) = stale_patterns("e2", 8);
        assert!(id.contains(&any) && !id.contains(&spared), "another epoch of e2 is stale");
        assert!(!id.contains(&stale_patterns("e", 7).0), "e is not e1 or e2");
    }
}
