//! Rollup repairs against a real server (a private 18.16
//! `clickhouse-server`): several repairs of one rollup started at once (the
//! healer and `tally billing reconcile --repair`, say) add what it lacks
//! once, not once each (`Store::repair_rollup`: one repair of a rollup runs
//! at a time per server, the others are refused and try again).

use std::time::Duration;

use tally_core::clickhouse::private_server::PrivateServer;
use tally_core::clickhouse::store::Family;
use tally_core::clickhouse::Store;
use tally_core::resolution::Resolution;

/// 2024-01-15 12:00 UTC.
const HOUR: u32 = 1_705_320_000;
const ROWS: u64 = 400;
const REPAIRS: usize = 6;

/// Repairs until this repair ran (not refused because another one runs).
async fn repair(url: String) -> u32 {
    let store = Store::connect(&url, None, None).await.unwrap();
    let mut refused = 0;
    loop {
        match store.repair_rollup(Family::Clicks, Resolution::Hour, HOUR, HOUR + 3600, HOUR + 7200).await {
            Ok(()) => return refused,
            Err(e) if e.is_repair_running() => {
                refused += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repairs_of_one_rollup_started_together_add_its_gap_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = PrivateServer::start(dir.path()).await.unwrap();
    let store = Store::connect(&server.http_url(), None, None).await.unwrap();
    store.migrate().await.unwrap();
    let raw = clickhouse::Client::default().with_url(server.http_url()).with_validation(false);
    // The hourly view is gone while one committed batch lands: its hour
    // rollup lacks all of it.
    raw.query("DROP TABLE tally.clicks_by_hour_mv").execute().await.unwrap();
    raw.query(&format!(
        "INSERT INTO tally.clicks_by_second (tenant, ad_id, campaign_id, second, clicks, spend_micros, user_hashes, edge, batch_seq, row_idx) \
         SELECT 'acme', number % 7, 0, {HOUR} + number % 3600, 3, 30, [toUInt32(number)], 'e1', 1, toUInt32(number) FROM system.numbers LIMIT {ROWS}"
    ))
    .execute()
    .await
    .unwrap();
    raw.query(&format!(
        "INSERT INTO tally.batches (edge, seq, state, rows, click_records, refused, clicks, checksum, min_second, max_second, low_watermark_ms, recorded_at) \
         VALUES ('e1', 1, 2, {ROWS}, 0, 0, {}, 1, {HOUR}, {}, 0, 0)",
        3 * ROWS,
        HOUR + 3599
    ))
    .execute()
    .await
    .unwrap();
    let drift = store.rollup_drift(Family::Clicks, Resolution::Hour, HOUR, HOUR + 3600, HOUR + 7200).await.unwrap();
    assert_eq!(drift.iter().map(|(_, t)| t.clicks).sum::<u64>(), 3 * ROWS, "{drift:?}");

    let repairs: Vec<_> = (0..REPAIRS).map(|_| tokio::spawn(repair(server.http_url()))).collect();
    let mut refused = 0;
    for r in repairs {
        refused += r.await.unwrap();
    }
    let (clicks, spend) =
        raw.query("SELECT toUInt64(sumMerge(clicks)), toUInt64(sumMerge(spend_micros)) FROM tally.clicks_by_hour").fetch_one::<(u64, u64)>().await.unwrap();
    assert_eq!((clicks, spend), (3 * ROWS, 30 * ROWS), "{REPAIRS} repairs at once ({refused} refusals while another ran)");
    assert!(store.rollup_drift(Family::Clicks, Resolution::Hour, HOUR, HOUR + 3600, HOUR + 7200).await.unwrap().is_empty());
    eprintln!("{REPAIRS} repairs of one rollup at once: its gap added once; {refused} refusals while another ran");
    server.stop().await;
}
