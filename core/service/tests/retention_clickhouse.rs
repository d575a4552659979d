//! Retention against a real server (a private 18.16 `clickhouse-server`):
//! whole months past a family's retention are dropped, recent months, other
//! families, billing statements and click records of hours that are not
//! final stay.

use tally_core::clickhouse::private_server::PrivateServer;
use tally_core::clickhouse::Store;
use tally_core::retention::{self, Dropped, RetentionSection};

/// 2024-01-15 12:00 UTC and 2024-02-15 12:00 UTC: two old months.
const JAN: u32 = 1_705_320_000;
const FEB: u32 = 1_707_998_400;

async fn count(raw: &clickhouse::Client, table: &str, month: u32) -> u64 {
    let column = if table == "billing_statements" { "hour" } else { "second" };
    raw.query(&format!("SELECT toUInt64(count()) FROM tally.{table} WHERE toYYYYMM({column}) = {month}")).fetch_one::<u64>().await.unwrap()
}

async fn insert_month(raw: &clickhouse::Client, at: u32, seq: u64) {
    raw.query(&format!(
        "INSERT INTO tally.clicks_by_second (tenant, ad_id, campaign_id, second, clicks, spend_micros, user_hashes, edge, batch_seq, row_idx) \
         VALUES ('acme', 1, 2, {at}, 3, 30, [], 'e1', {seq}, 0)"
    ))
    .execute()
    .await
    .unwrap();
    raw.query(&format!(
        "INSERT INTO tally.click_records (tenant, id_hi, id_lo, ad_id, second, cost_micros, verdict, accepted_ms, edge, batch_seq, row_idx) \
         VALUES ('acme', 1, {seq}, 1, {at}, 10, 0, {at}000, 'e1', {seq}, 0)"
    ))
    .execute()
    .await
    .unwrap();
    raw.query(&format!(
        "INSERT INTO tally.billing_statements (tenant, hour, ad_id, kind, clicks, spend_micros, recorded_at) VALUES ('acme', {at}, 1, 'final', 3, 30, {at})"
    ))
    .execute()
    .await
    .unwrap();
}

async fn committed_watermark(raw: &clickhouse::Client, seq: u64, watermark_secs: u32) {
    raw.query(&format!(
        "INSERT INTO tally.batches (edge, seq, state, rows, click_records, refused, clicks, checksum, min_second, max_second, low_watermark_ms, recorded_at) \
         VALUES ('e1', {seq}, 2, 1, 1, 0, 3, {seq}, 0, 0, {watermark_secs}000, 0)"
    ))
    .execute()
    .await
    .unwrap();
}

#[tokio::test]
async fn retention_drops_whole_old_months_of_configured_families_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = PrivateServer::start(dir.path()).await.unwrap();
    let store = Store::connect(&server.http_url(), None, None).await.unwrap();
    store.migrate().await.unwrap();
    let raw = clickhouse::Client::default().with_url(server.http_url()).with_validation(false);
    let now = (tally_model::timestamp::now_ms() / 1000) as u32;
    insert_month(&raw, JAN, 1).await;
    insert_month(&raw, FEB, 2).await;
    insert_month(&raw, now, 3).await;
    let this = raw.query(&format!("SELECT toUInt32(toYYYYMM(toDateTime({now}, 'UTC')))")).fetch_one::<u32>().await.unwrap();
    let (jan, feb) = (202401, 202402);
    let retention = RetentionSection { landing_days: Some(30), click_records_days: Some(30), ..RetentionSection::default() };

    // Nothing configured: nothing goes.
    assert_eq!(retention::pass(&store, std::slice::from_ref(&store), &RetentionSection::default(), 48, now).await.unwrap(), vec![]);

    // The only edge's watermark is still in January: January's hours are
    // not final, so its click records stay; landing rows are not billing's.
    committed_watermark(&raw, 1, JAN).await;
    let dropped = retention::pass(&store, std::slice::from_ref(&store), &retention, 48, now).await.unwrap();
    assert_eq!(
        dropped,
        vec![Dropped { table: "clicks_by_second", partition: jan }, Dropped { table: "clicks_by_second", partition: feb }],
        "landing months past 30 days go; click records of hours not final stay"
    );
    assert_eq!((count(&raw, "clicks_by_second", jan).await, count(&raw, "clicks_by_second", feb).await), (0, 0));
    assert_eq!(count(&raw, "clicks_by_second", this).await, 1, "this month's landing rows stay");
    assert_eq!((count(&raw, "click_records", jan).await, count(&raw, "click_records", feb).await), (1, 1));

    // The watermark moves into February: January is final, February is not.
    committed_watermark(&raw, 2, FEB).await;
    let dropped = retention::pass(&store, std::slice::from_ref(&store), &retention, 48, now).await.unwrap();
    assert_eq!(dropped, vec![Dropped { table: "click_records", partition: jan }]);
    assert_eq!((count(&raw, "click_records", jan).await, count(&raw, "click_records", feb).await), (0, 1));

    // Every hour final: the rest of the old click records go, never the
    // statements, nor the minute rollup (no retention set for it).
    committed_watermark(&raw, 3, now).await;
    let dropped = retention::pass(&store, std::slice::from_ref(&store), &retention, 48, now).await.unwrap();
    assert_eq!(dropped, vec![Dropped { table: "click_records", partition: feb }]);
    assert_eq!(count(&raw, "click_records", this).await, 1);
    for month in [jan, feb, this] {
        assert_eq!(count(&raw, "billing_statements", month).await, 1, "billing statements of {month} are never dropped");
    }
    let minute_rows =
        raw.query(&format!("SELECT toUInt64(count()) FROM tally.clicks_by_minute WHERE toYYYYMM(minute) = {jan}")).fetch_one::<u64>().await.unwrap();
    assert!(minute_rows > 0, "the minute rollup keeps January (no retention configured for it)");

    // Repeating a pass drops nothing more.
    assert_eq!(retention::pass(&store, std::slice::from_ref(&store), &retention, 48, now).await.unwrap(), vec![]);
    server.stop().await;
}
