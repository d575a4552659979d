//! The SQL check (`deploy/clickhouse/check_modern.py`) against the very
//! ClickHouse 18.16 the tests use; the same script runs on chdb (modern
//! engine) in the test command, so one text is proven on both.

use tally_core::clickhouse::private_server::PrivateServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_and_queries_pass_the_sql_check_on_18_16() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = PrivateServer::start(dir.path()).await.unwrap();
    let port = server.http_url().rsplit(':').next().unwrap().to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/clickhouse/check_modern.py");
    let out = tokio::process::Command::new("python3").arg(script).arg("--http-port").arg(&port).output().await.unwrap();
    server.stop().await;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("statements ok"), "{text}");
}
