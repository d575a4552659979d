//! Cluster mode: `[clickhouse] cluster` names a `remote_servers` cluster of
//! Replicated shards, and every query runs through the `Distributed` tables
//! of `deploy/clickhouse/cluster/` (database `tally`, the same names and
//! columns as on one server, so every query file runs unchanged).
//!
//! What makes a `Committed` answer true on a cluster, set on every query of
//! a cluster-mode [`Store`] (URL settings; 18.16 takes no `SET` over HTTP):
//!
//! * `insert_distributed_sync=1`: a Distributed INSERT is answered only once
//!   every shard has its rows (the default queues them on the receiving server
//!   and answers at once).
//! * `insert_quorum` ([`InsertQuorum`], `[clickhouse] insert_quorum`): `all`
//!   (the default) is R, the replicas per shard read from `system.clusters`:
//!   each shard's part is on every replica before the answer, so no crash of
//!   any R-1 servers of a shard loses an acknowledged row, and with one replica
//!   down the shard takes no writes (the edges hold their batches) until it is
//!   back. A number Q (2 <= Q <= R, checked at start) answers once Q replicas
//!   have the part (the others fetch it afterwards): writes go on with R-Q
//!   replicas of a shard down, and an acknowledged row survives the loss of
//!   any Q-1 of the replicas that confirmed it; losing Q of them before the
//!   others fetched it can lose it. Q = 1 is refused: 18.16 then writes
//!   with no quorum at all, and a probe through another replica could miss
//!   rows the first one holds.
//! * `insert_quorum_timeout`: a write to a dead replica fails after
//!   [`QUORUM_TIMEOUT_MS`] instead of 18.16's 10 minutes. Its part stays on
//!   the replicas that have it and becomes visible once the quorum is reached;
//!   until then 18.16 refuses further quorum writes to that table ("quorum for
//!   previous write has not been satisfied yet"). Both are ordinary errors:
//!   the group is answered `Retry` and the ledger protocol resumes it (probe,
//!   insert the complement). They are not retried in place: a retried INSERT
//!   whose other shards had already succeeded would rest on block
//!   deduplication alone.
//! * `select_sequential_consistency=1`: reads see only parts that reached
//!   their quorum, so the probe and the ledger never count a part that a
//!   replica crash could still take back, and every server answers the same.
//! * `distributed_product_mode=global`: the heal queries filter a Distributed
//!   table by `IN (SELECT ... FROM tally.batches)`, another Distributed table.
//!
//! The second line: Replicated tables drop a block whose content they saw in
//! their last `replicated_deduplication_window` blocks. The sharding keys are
//! deterministic and the committer sends one batch's part per INSERT
//! ([`crate::commit::batch_store::BatchStore::one_batch_per_insert`]) in a
//! fixed row order, so a re-sent or stale INSERT makes the same block per
//! (shard, partition) and is dropped there. 18.16 does not fire the views for
//! a dropped block; nor does it for a block whose quorum timed out (the view
//! runs after the landing write). Such a rollup gap is healed like one left by
//! a crash mid-INSERT (`crate::heal`).
//!
//! Schema: bootstrap (`tally`, `tally.schema_migrations`, which stays per
//! server and unused here), then the three cluster files, applied on every
//! server at start, all `IF NOT EXISTS`; `{{cluster}}` becomes the name
//! ([`migrate_every_server`]). A server that cannot be reached then does not
//! stop the core while another took the schema: it gets the schema once it
//! answers (retried in the background), and the core's clients
//! (`super::failover`) use the others meanwhile.

use serde::Deserialize;

use super::schema::{statements, BOOTSTRAP};
use super::store::{err, Store, StoreError};

/// The cluster schema in order: shard-local tables, their views, the
/// Distributed tables over them.
pub const SCHEMA: &[&str] = &[
    include_str!("../../../../deploy/clickhouse/cluster/1_shard_tables.sql"),
    include_str!("../../../../deploy/clickhouse/cluster/2_shard_views.sql"),
    include_str!("../../../../deploy/clickhouse/cluster/3_distributed.sql"),
];

/// How long a quorum INSERT waits for every replica of a shard.
pub const QUORUM_TIMEOUT_MS: u64 = 15_000;

/// A cluster-mode [`Store`]'s cluster.
#[derive(Debug, Clone)]
pub struct ClusterMode {
    pub name: String,
    /// Replicas per shard.
    pub replicas: u64,
    /// Replicas of a shard that confirm each INSERT before its answer.
    pub quorum: u64,
}

/// `[clickhouse] insert_quorum`: `"all"` or a number of replicas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InsertQuorum {
    /// Every replica of the shard.
    #[default]
    All,
    Replicas(u64),
}

impl InsertQuorum {
    /// The `insert_quorum` setting on a cluster of `replicas` per shard, or
    /// why this quorum cannot be met there.
    pub fn resolve(self, replicas: u64) -> Result<u64, String> {
        match self {
            InsertQuorum::All => Ok(replicas),
            InsertQuorum::Replicas(q) if (2..=replicas).contains(&q) => Ok(q),
            InsertQuorum::Replicas(q) if q > replicas => Err(format!(
                "insert_quorum = {q}, but the cluster has {replicas} replicas per shard: no insert could ever be confirmed; set 2 to {replicas}, or \"all\""
            )),
            InsertQuorum::Replicas(q) => {
                Err(format!("insert_quorum = {q} is no quorum (an answered row could be on one server only); set 2 to {replicas}, or \"all\" (the default)"))
            }
        }
    }
}

impl serde::Serialize for InsertQuorum {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            InsertQuorum::All => s.serialize_str("all"),
            InsertQuorum::Replicas(q) => s.serialize_u64(*q),
        }
    }
}

impl<'de> Deserialize<'de> for InsertQuorum {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Number(u64),
            Word(String),
        }
        match Written::deserialize(d)? {
            Written::Number(q) => Ok(InsertQuorum::Replicas(q)),
            Written::Word(w) if w == "all" => Ok(InsertQuorum::All),
            Written::Word(w) => Err(serde::de::Error::custom(format!("insert_quorum {w:?}: use \"all\" or a number of replicas"))),
        }
    }
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct Replicas {
    shards: u64,
    replicas: u64,
}

/// The cluster schema's statements with `{{cluster}}` filled in.
pub fn schema_statements(cluster: &str) -> Vec<String> {
    SCHEMA.iter().flat_map(|sql| statements(sql)).map(|s| s.replace("{{cluster}}", cluster)).collect()
}

/// A cluster name is put into DDL as an identifier: letters, digits, `_`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Store {
    /// This store in cluster mode when `cluster` is set (see the module
    /// docs), every insert confirmed by all replicas; unchanged otherwise.
    /// Fails if this server does not know the cluster.
    pub async fn in_cluster(self, cluster: Option<&str>) -> Result<Store, StoreError> {
        self.in_cluster_with(cluster, InsertQuorum::All).await
    }

    /// [`Store::in_cluster`] with inserts confirmed by `quorum`; fails if the
    /// cluster cannot meet it.
    pub async fn in_cluster_with(mut self, cluster: Option<&str>, quorum: InsertQuorum) -> Result<Store, StoreError> {
        let Some(name) = cluster else { return Ok(self) };
        let what = "reading the cluster layout";
        let found = self
            .server
            .query("SELECT toUInt64(uniqExact(shard_num)) AS shards, toUInt64(max(replica_num)) AS replicas FROM system.clusters WHERE cluster = ?")
            .bind(name)
            .fetch_one::<Replicas>()
            .await
            .map_err(err(what))?;
        if found.shards == 0 {
            return Err(StoreError::Unexpected {
                what,
                found: format!("no cluster named {name:?} in this server's remote_servers (check [clickhouse] cluster)"),
            });
        }
        let quorum = quorum
            .resolve(found.replicas)
            .map_err(|found| StoreError::Unexpected { what: "checking [clickhouse] insert_quorum against the cluster", found })?;
        let settings = |client: clickhouse::Client| {
            client
                .with_setting("insert_distributed_sync", "1")
                .with_setting("insert_quorum", quorum.to_string())
                .with_setting("insert_quorum_timeout", QUORUM_TIMEOUT_MS.to_string())
                .with_setting("select_sequential_consistency", "1")
                .with_setting("distributed_product_mode", "global")
        };
        self.server = settings(self.server);
        self.db = settings(self.db);
        tracing::info!(
            cluster = name,
            shards = found.shards,
            replicas = found.replicas,
            quorum,
            "ClickHouse cluster mode: quorum inserts through Distributed tables"
        );
        self.cluster = Some(ClusterMode { name: name.into(), replicas: found.replicas, quorum });
        Ok(self)
    }

    pub fn cluster(&self) -> Option<&ClusterMode> {
        self.cluster.as_ref()
    }

    /// The cluster schema on this server (idempotent).
    pub(super) async fn migrate_cluster(&self, cluster: &ClusterMode) -> Result<(), StoreError> {
        for stmt in statements(BOOTSTRAP) {
            self.server.query(&stmt).execute().await.map_err(err("bootstrap"))?;
        }
        for stmt in schema_statements(&cluster.name) {
            self.server.query(&stmt).execute().await.map_err(err("applying the cluster schema (deploy/clickhouse/cluster/)"))?;
        }
        Ok(())
    }
}

/// How often the schema is tried again on a server that was down at start.
const SCHEMA_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// Applies the cluster schema on every server of `urls` that answers; those
/// that do not get it in the background once they do. Fails only when no
/// server took it.
pub async fn migrate_every_server(urls: &[String], user: Option<&str>, password: Option<&str>, cluster: &str) -> Result<(), StoreError> {
    let mut first_error = None;
    let mut applied = 0;
    for url in urls {
        match migrate_one(url, user, password, cluster).await {
            Ok(()) => applied += 1,
            Err(e) => {
                tracing::warn!(server = %url, error = %e, "cannot apply the cluster schema on this ClickHouse server now: retrying in the background every {} s; the core uses the other servers meanwhile", SCHEMA_RETRY.as_secs());
                let (url, user, password, cluster) = (url.clone(), user.map(String::from), password.map(String::from), cluster.to_string());
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(SCHEMA_RETRY).await;
                        if migrate_one(&url, user.as_deref(), password.as_deref(), &cluster).await.is_ok() {
                            tracing::info!(server = %url, "cluster schema applied on a ClickHouse server that was down at start");
                            return;
                        }
                    }
                });
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) if applied == 0 => Err(e),
        _ => Ok(()),
    }
}

async fn migrate_one(url: &str, user: Option<&str>, password: Option<&str>, cluster: &str) -> Result<(), StoreError> {
    Store::connect(url, user, password).await?.in_cluster(Some(cluster)).await?.migrate().await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_statement_is_idempotent_and_named() {
        let stmts = schema_statements("tally");
        assert!(stmts.len() > 40);
        for s in &stmts {
            assert!(s.contains("IF NOT EXISTS"), "not idempotent: {s}");
            assert!(!s.contains("{{"), "placeholder left: {s}");
            assert!(!s.contains("rand("), "sharding must be deterministic: {s}");
        }
        assert!(valid_name("tally_1") && !valid_name("a b") && !valid_name(""));
    }

    #[test]
    fn the_insert_quorum_is_all_replicas_or_a_real_quorum_the_cluster_can_meet() {
        assert_eq!(InsertQuorum::All.resolve(3), Ok(3));
        assert_eq!(InsertQuorum::All.resolve(1), Ok(1), "one replica: all of it");
        assert_eq!(InsertQuorum::Replicas(2).resolve(3), Ok(2));
        assert_eq!(InsertQuorum::Replicas(3).resolve(3), Ok(3));
        let too_many = InsertQuorum::Replicas(4).resolve(3).unwrap_err();
        assert!(too_many.contains("has 3 replicas per shard") && too_many.contains("set 2 to 3"), "{too_many}");
        for q in [0, 1] {
            assert!(InsertQuorum::Replicas(q).resolve(3).unwrap_err().contains("is no quorum"), "{q}");
        }
        #[derive(Deserialize, serde::Serialize, PartialEq, Debug)]
        struct Section {
            insert_quorum: InsertQuorum,
        }
        let parse = |text: &str| serde_json::from_str::<Section>(text).map(|s| s.insert_quorum);
        assert_eq!(parse(r#"{"insert_quorum": "all"}"#).unwrap(), InsertQuorum::All);
        assert_eq!(parse(r#"{"insert_quorum": 2}"#).unwrap(), InsertQuorum::Replicas(2));
        assert!(parse(r#"{"insert_quorum": "most"}"#).unwrap_err().to_string().contains("use \"all\" or a number"));
        for q in [InsertQuorum::All, InsertQuorum::Replicas(2)] {
            let written = serde_json::to_string(&Section { insert_quorum: q }).unwrap();
            assert_eq!(parse(&written).unwrap(), q, "{written}");
        }
    }

    /// Every shard-local table has its Distributed table, and only those.
    #[test]
    fn distributed_over_every_shard_table() {
        let stmts = schema_statements("c");
        let name = |s: &str, prefix: &str| s.strip_prefix(prefix).map(|r| r.split_whitespace().next().unwrap().to_string());
        let mut local: Vec<String> = stmts.iter().filter_map(|s| name(s, "CREATE TABLE IF NOT EXISTS tally_shard.")).collect();
        let mut distributed: Vec<String> = stmts.iter().filter_map(|s| name(s, "CREATE TABLE IF NOT EXISTS tally.")).collect();
        local.sort();
        distributed.sort();
        assert_eq!(local, distributed);
        for s in stmts.iter().filter(|s| s.starts_with("CREATE TABLE IF NOT EXISTS tally_shard.")) {
            assert!(
                s.contains("ENGINE = Replicated") && s.contains("'/clickhouse/tables/{shard}/tally/") && s.contains("replicated_deduplication_window"),
                "{s}"
            );
        }
    }
}
