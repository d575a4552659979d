//! The commit protocol's ClickHouse store against a real server (a private
//! 18.16 `clickhouse-server`): the ledger decodes strictly, the probe finds
//! rows of every part, a resumed commit adds only what is missing, and a
//! batch id recorded with other content is refused before any row.

use tally_core::clickhouse::private_server::PrivateServer;
use tally_core::clickhouse::store::Family;
use tally_core::clickhouse::Store;
use tally_core::commit::batch_store::{BatchStore, PartRows};
use tally_core::commit::committer::{commit_group, Entry, Outcome};
use tally_core::commit::plan::{LedgerState, Part};
use tally_core::commit::row_binary;
use tally_core::commit::rows::{Hashes, LandingRow, LedgerRow};
use tally_core::heal::{self, plan::Dirty, Repair};
use tally_core::resolution::Resolution;
use tally_model::batch::frame::BatchArchive;
use tally_model::batch::{Batch, ClickRecord, RefusalReason, RefusedRecord, SecondRow, TenantRows};

fn batch(seq: u64, clicks: u64) -> Batch {
    let second = 1_795_428_000;
    let tenant = TenantRows {
        tenant: "acme".into(),
        rows: vec![SecondRow { ad_id: 42, campaign_id: 7, second, clicks, spend_micros: 10 * clicks, user_hashes: vec![] }],
        clicks: (0..clicks)
            .map(|i| ClickRecord {
                id_hi: seq,
                id_lo: i,
                ad_id: 42,
                campaign_id: 7,
                ts_ms: second as u64 * 1000,
                cost_micros: 10,
                verdict: 0,
                accepted_ms: second as u64 * 1000,
            })
            .collect(),
        refused: vec![RefusedRecord { id_hi: 9, id_lo: seq, ad_id: 42, ts_ms: 1000, reason: RefusalReason::TooLate, code: 0, at_ms: second as u64 * 1000 }],
        dims: vec![],
        verdicts: vec![],
    };
    Batch { edge: "edge-t".into(), seq, sealed_at_ms: 0, low_watermark_ms: 0, wal_from: 0, wal_to: 1, tenants: vec![tenant] }
}

async fn present(store: &Store, b: &Batch) -> Vec<(Part, u32)> {
    let mut rows = store.rows_present(&b.edge, b.seq, &b.totals()).await.unwrap();
    rows.sort();
    rows
}

/// One landing row as the committer would insert it.
fn landing_insert<'a>(row: &'a LandingRow<'a>) -> PartRows<'a> {
    let (mut body, mut columns) = (bytes::BytesMut::new(), Vec::new());
    row_binary::encode(&mut body, Some(&mut columns), row).unwrap();
    PartRows { part: Part::Landing, body: body.freeze(), columns, rows: vec![(row.edge, row.batch_seq, std::slice::from_ref(&row.row_idx))], query_id: None }
}

fn ledger_row(b: &Batch, state: u8, checksum: u64) -> LedgerRow {
    let t = b.totals();
    LedgerRow {
        edge: b.edge.clone(),
        seq: b.seq,
        state,
        rows: t.rows,
        click_records: t.click_records,
        refused: t.refused,
        clicks: t.clicks,
        checksum,
        min_second: t.min_second,
        max_second: t.max_second,
        low_watermark_ms: 0,
        recorded_at: 0,
    }
}

#[tokio::test]
async fn the_clickhouse_store_keeps_the_protocol() {
    if !std::path::Path::new("/usr/sbin/clickhouse-server").exists() && std::env::var_os("TALLY_CLICKHOUSE_SERVER").is_none() {
        panic!("clickhouse-server is not installed: run deploy/dev/setup.sh");
    }
    let dir = tempfile::tempdir().unwrap();
    let mut server = PrivateServer::start(dir.path()).await.unwrap();
    let store = Store::connect(&server.http_url(), None, None).await.unwrap();
    store.migrate().await.unwrap();

    // A fresh batch commits; a re-send is a duplicate and adds nothing.
    let b1 = batch(1, 3);
    let outcome = commit_group(&store, &[Entry::new(BatchArchive::of(&b1), 0xA1)], &mut || {}).await.unwrap();
    assert_eq!(outcome, [Outcome::Committed]);
    let all = present(&store, &b1).await;
    assert_eq!(all, [(Part::Landing, 0), (Part::Clicks, 0), (Part::Clicks, 1), (Part::Clicks, 2), (Part::Refused, 0)]);
    assert_eq!(commit_group(&store, &[Entry::new(BatchArchive::of(&b1), 0xA1)], &mut || {}).await.unwrap(), [Outcome::Duplicate]);
    assert_eq!(present(&store, &b1).await, all);

    // Other content under a committed id: refused, nothing written.
    let forged = batch(1, 5);
    assert_eq!(commit_group(&store, &[Entry::new(BatchArchive::of(&forged), 0xBAD)], &mut || {}).await.unwrap(), [Outcome::Conflict { recorded: 0xA1 }]);
    assert_eq!(present(&store, &forged).await, all);

    // An attempt that died after `Started` and part of an insert resumes
    // with exactly the missing rows.
    let b2 = batch(2, 2);
    store.append_ledger(&[ledger_row(&b2, LedgerState::STARTED, 0xB2)]).await.unwrap();
    let r = &b2.tenants[0].rows[0];
    let landed = LandingRow {
        tenant: "acme".into(),
        ad_id: r.ad_id,
        campaign_id: r.campaign_id,
        second: r.second,
        clicks: r.clicks,
        spend_micros: r.spend_micros,
        user_hashes: Hashes(&[]),
        edge: &b2.edge,
        batch_seq: b2.seq,
        row_idx: 0,
    };
    store.insert(&landing_insert(&landed), "tally-test-partial").await.unwrap();
    assert_eq!(present(&store, &b2).await, [(Part::Landing, 0)]);
    let resumed = commit_group(&store, &[Entry::new(BatchArchive::of(&b2), 0xB2)], &mut || {}).await.unwrap();
    // The row already present may lack its view rows: its hour is handed to the healer.
    let hour = r.second / 3600 * 3600;
    let dirty = [Dirty { family: Family::Clicks, hour }, Dirty { family: Family::Campaigns, hour }];
    assert_eq!(resumed, [Outcome::Resumed { dirty: dirty.into() }]);
    let after = present(&store, &b2).await;
    assert_eq!(after, [(Part::Landing, 0), (Part::Clicks, 0), (Part::Clicks, 1), (Part::Refused, 0)]);
    assert_eq!(commit_group(&store, &[Entry::new(BatchArchive::of(&b2), 0xB2)], &mut || {}).await.unwrap(), [Outcome::Duplicate]);
    assert_eq!(present(&store, &b2).await, after);

    // A crash between a landing part and its view's part: the hourly view
    // misses a row the landing table holds, and the resume skips that row.
    let raw = clickhouse::Client::default().with_url(server.http_url());
    let b4 = batch(4, 2);
    store.append_ledger(&[ledger_row(&b4, LedgerState::STARTED, 0xD4)]).await.unwrap();
    // (and the campaign rollup's day view, which the healer repairs too)
    for view in ["clicks_by_hour_mv", "campaigns_by_day_mv"] {
        raw.query(&format!("DETACH TABLE tally.{view}")).execute().await.unwrap();
    }
    store.insert(&landing_insert(&LandingRow { batch_seq: b4.seq, ..landed }), "tally-test-no-view").await.unwrap();
    for view in ["clicks_by_hour_mv", "campaigns_by_day_mv"] {
        raw.query(&format!("ATTACH TABLE tally.{view}")).execute().await.unwrap();
    }
    let [Outcome::Resumed { dirty }] = &commit_group(&store, &[Entry::new(BatchArchive::of(&b4), 0xD4)], &mut || {}).await.unwrap()[..] else {
        panic!("b4 was not resumed")
    };
    assert_eq!(dirty, &[Dirty { family: Family::Clicks, hour }, Dirty { family: Family::Campaigns, hour }].into());
    // Just committed: not settled yet, so not taken for drift (its views
    // could still be filling).
    let now = (tally_model::timestamp::now_ms() / 1000) as u32;
    assert_eq!(heal::pass(&store, now - 1, dirty).await.unwrap(), []);
    let settled = now + heal::SETTLE_SECS + 2;
    let repaired = heal::pass(&store, settled, dirty).await.unwrap();
    let want = Repair { family: Family::Clicks, step: Resolution::Hour, tenant: "acme".into(), bucket: hour, clicks: r.clicks, spend_micros: r.spend_micros };
    let day = Repair { family: Family::Campaigns, step: Resolution::Day, bucket: hour / 86_400 * 86_400, ..want.clone() };
    assert_eq!(repaired, [want, day]);
    assert_eq!(heal::pass(&store, settled, dirty).await.unwrap(), [], "a second pass repairs nothing");
    let landing = store.landing_hours(Family::Clicks, hour, hour + 3600).await.unwrap();
    assert_eq!(store.rollup_hours(Family::Clicks, hour, hour + 3600).await.unwrap(), landing);
    assert_eq!(store.rollup_hours(Family::Campaigns, hour, hour + 3600).await.unwrap(), landing);

    // A state byte from a damaged ledger or a newer release is not read as committed.
    let b3 = batch(3, 1);
    store.append_ledger(&[ledger_row(&b3, 7, 0xC3)]).await.unwrap();
    assert_eq!(commit_group(&store, &[Entry::new(BatchArchive::of(&b3), 0xC3)], &mut || {}).await.unwrap(), [Outcome::Unreadable { state: 7 }]);
    assert!(present(&store, &b3).await.is_empty());

    server.stop().await;
}
