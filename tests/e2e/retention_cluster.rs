//! Retention in cluster mode: ZooKeeper and 2 shards x 2 replicas of
//! ClickHouse 18.16. Landing rows of an old month and of this one go in
//! through the Distributed table; a retention pass drops the old month of
//! the `tally_shard` tables on every server (what the Distributed table
//! reads is gone from both shards and every replica) and keeps this month
//! and the families it was not told to prune.

use tally::cluster::Cluster;
use tally::traffic::now_ms;
use tally_core::clickhouse::Store;
use tally_core::retention::{self, RetentionSection};
use tally_http::client::Client;

/// One server's answer to `sql` (TSV lines).
async fn ask(client: &Client, url: &str, sql: &str) -> Vec<String> {
    let reply = client.send(http::Method::POST, &format!("{url}/"), None, None, sql.to_string()).await.expect("asking ClickHouse");
    assert!(reply.status.is_success(), "{sql}: {}", reply.text());
    reply.text().lines().map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_old_months_of_the_shard_tables_on_every_server() {
    let dir = tempfile::Builder::new().prefix("tally-retention-cluster-").tempdir().unwrap();
    let mut cluster = Cluster::start(&dir.path().join("cluster"), 2, 2).await.expect("starting ZooKeeper and 2x2 ClickHouse servers");
    let urls = cluster.urls();
    let mut servers = Vec::new();
    for url in &urls {
        let server = Store::connect(url, None, None).await.unwrap().in_cluster(Some(cluster.name())).await.unwrap();
        server.migrate().await.expect("cluster schema");
        servers.push(server);
    }
    let client = Client::new();
    let now = (now_ms() / 1000) as u32;
    let this_month = ask(&client, &urls[0], &format!("SELECT toYYYYMM(toDateTime({now}, 'UTC'))")).await[0].clone();
    // 40 ads in January 2020 and now: every shard gets rows of both months.
    let rows: Vec<String> = (1..=40u64)
        .flat_map(|ad| [format!("('acme', {ad}, toDateTime('2020-01-15 10:00:00', 'UTC'), 1)"), format!("('acme', {ad}, toDateTime({now}, 'UTC'), 2)")])
        .collect();
    let insert = format!("INSERT INTO tally.clicks_by_second (tenant, ad_id, second, clicks) VALUES {}", rows.join(", "));
    let sync = format!("{}/?insert_distributed_sync=1&insert_quorum=2", urls[0]);
    let reply = client.send(http::Method::POST, &sync, None, None, insert).await.unwrap();
    assert!(reply.status.is_success(), "{}", reply.text());
    let parts =
        "SELECT DISTINCT partition FROM system.parts WHERE database = 'tally_shard' AND table = 'clicks_by_second' AND active ORDER BY partition FORMAT TSV";
    for url in &urls {
        assert_eq!(ask(&client, url, parts).await, ["202001".to_string(), this_month.clone()], "{url} before the pass");
    }

    // Nothing configured: nothing goes.
    assert_eq!(retention::pass(&servers[0], &servers, &RetentionSection::default(), 48, now).await.unwrap(), vec![]);
    let landing = RetentionSection { landing_days: Some(30), ..RetentionSection::default() };
    let dropped = retention::pass(&servers[0], &servers, &landing, 48, now).await.expect("a retention pass over the cluster");
    assert!(!dropped.is_empty() && dropped.iter().all(|d| d.table == "clicks_by_second" && d.partition == 202001), "{dropped:?}");
    for url in &urls {
        assert_eq!(ask(&client, url, parts).await, [this_month.clone()], "{url}: the old month is left on this server");
        let minute = "SELECT DISTINCT partition FROM system.parts WHERE database = 'tally_shard' AND table = 'clicks_by_minute' AND active ORDER BY partition FORMAT TSV";
        assert_eq!(ask(&client, url, minute).await, ["202001".to_string(), this_month.clone()], "{url}: minute rollups are not the landing family");
    }
    let totals = "SELECT toYYYYMM(second) AS m, count(), sum(clicks) FROM tally.clicks_by_second GROUP BY m ORDER BY m FORMAT TSV";
    assert_eq!(ask(&client, &urls[3], totals).await, [format!("{this_month}\t40\t80")], "what the Distributed table reads");
    // A second pass finds nothing left to drop.
    assert_eq!(retention::pass(&servers[0], &servers, &landing, 48, now).await.unwrap(), vec![]);

    cluster.stop().await;
}
