//! Edge -> core over QUIC: corrupt batches are refused without harm, re-sent
//! batches are committed once, and batches wait out a core that is down;
//! only enrolled edge keys may ship, each only as its own edge.

use bytes::Bytes;
use tally::traffic::{json_array, now_ms, ClickGen, GenOptions};
use tally_edge::shipper::Connector;
use tally_http::pinned::Fingerprint;
use tally_model::batch::{frame, Batch, ClickRecord, SecondRow, TenantRows, VERDICT_COUNTED};
use tally_model::reply::Status;

use crate::harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_batches_are_rejected_and_resends_commit_once() {
    let mut pop = harness::start(&["acme"]).await;
    // A test client enrolled as edge "test-edge" (its own key, pinned by the core).
    let keys = pop.pop.state.dir.join("test-keys");
    let key = |name: &str| tally_http::tls::load_or_create(&keys, name, &["test-edge".into()]).unwrap();
    let fingerprint = |id: &tally_http::tls::Identity| Fingerprint::of(&id.certs[0]).to_string();
    let (first_key, second_key, stranger) = (key("first"), key("second"), key("stranger"));
    pop.pop.enroll("test-edge", vec![fingerprint(&first_key)]).await.unwrap();
    let state = &pop.pop.state;
    let connect = |identity| Connector::new(state.core_quic, "localhost", &state.core_cert, identity).unwrap();
    let connector = connect(Some(&first_key));
    let second = (now_ms() / 1000) as u32;
    let record = |i: u64, second: u32, cost| ClickRecord {
        id_hi: 77,
        id_lo: i,
        ad_id: 77,
        campaign_id: 1,
        ts_ms: second as u64 * 1000,
        cost_micros: cost,
        verdict: VERDICT_COUNTED,
        accepted_ms: 0,
    };
    let batch = Batch {
        edge: "test-edge".into(),
        seq: 1,
        sealed_at_ms: 0,
        low_watermark_ms: 0,
        wal_from: 0,
        wal_to: 1,
        tenants: vec![TenantRows {
            tenant: "acme".into(),
            rows: vec![
                SecondRow { ad_id: 77, campaign_id: 1, second: second - 1, clicks: 2, spend_micros: 20, user_hashes: vec![] },
                SecondRow { ad_id: 77, campaign_id: 1, second, clicks: 5, spend_micros: 500, user_hashes: vec![1, 2] },
            ],
            clicks: (0..2).map(|i| record(i, second - 1, 10)).chain((2..7).map(|i| record(i, second, 100))).collect(),
            refused: vec![],
            ..TenantRows::default()
        }],
    };
    let good = frame::encode(&batch);

    // Garbage, a flipped payload bit, a truncated frame, an invalid batch.
    let mut flipped = good.clone();
    *flipped.last_mut().unwrap() ^= 1;
    let invalid = frame::encode(&Batch { tenants: vec![TenantRows { tenant: "NOT A TENANT".into(), ..TenantRows::default() }], ..batch.clone() });
    for (what, bytes) in [("garbage", b"hello core".to_vec()), ("flipped", flipped), ("truncated", good[..good.len() - 3].to_vec()), ("invalid", invalid)] {
        let reply = connector.send(Bytes::from(bytes)).await.unwrap();
        assert_eq!(reply.status, Status::Rejected, "{what}: {reply:?}");
        assert!(!reply.reason.is_empty());
    }

    // Who may submit what: no key or an unenrolled one is refused in the
    // handshake; an enrolled key ships only under its own edge id and only
    // for tenants the core knows.
    let good_frame = Bytes::from(good.clone());
    assert!(connect(None).send(good_frame.clone()).await.is_err(), "a client without a key was served");
    assert!(connect(Some(&stranger)).send(good_frame.clone()).await.is_err(), "an unenrolled key was served");
    let impostor = frame::encode(&Batch { edge: "local-edge-1".into(), ..batch.clone() });
    let reply = connector.send(Bytes::from(impostor)).await.unwrap();
    assert_eq!(reply.status, Status::Rejected, "{reply:?}");
    assert!(reply.reason.contains("authenticated as edge \"test-edge\""), "{reply:?}");
    let mut unknown_tenant = batch.clone();
    unknown_tenant.tenants[0].tenant = "globex".into();
    let reply = connector.send(Bytes::from(frame::encode(&unknown_tenant))).await.unwrap();
    assert_eq!(reply.status, Status::Rejected, "{reply:?}");
    assert!(reply.reason.contains("not in this core's tenants file"), "{reply:?}");

    // A frame of another Tally version is not damage: the edge is asked to
    // keep it (retry) until a core that reads it is up.
    let mut newer = good.clone();
    newer[4..6].copy_from_slice(&(frame::VERSION + 1).to_le_bytes());
    let reply = connector.send(Bytes::from(newer)).await.unwrap();
    assert_eq!(reply.status, Status::Retry, "{reply:?}");
    assert!(reply.reason.contains(&format!("version {}", frame::VERSION + 1)), "{reply:?}");

    // The real batch commits once; re-sends (also concurrent ones) are duplicates.
    let first = connector.send(Bytes::from(good.clone())).await.unwrap();
    assert_eq!(first.status, Status::Committed, "{first:?}");
    let resends = futures_like_join(&connector, &good, 4).await;
    assert!(resends.iter().all(|s| *s == Status::Duplicate), "{resends:?}");

    // Other content under the committed id is a conflict, never a duplicate.
    let mut other = batch.clone();
    other.tenants[0].rows[1].clicks = 6;
    other.tenants[0].rows[1].spend_micros = 600;
    other.tenants[0].clicks.push(record(7, second, 100));
    let conflict = connector.send(Bytes::from(frame::encode(&other))).await.unwrap();
    assert_eq!(conflict.status, Status::Rejected, "{conflict:?}");
    assert!(conflict.reason.starts_with("conflict: batch test-edge/1"), "{conflict:?}");
    // A low watermark far ahead of the core's clock would finalize hours early.
    let ahead = Batch { seq: 2, low_watermark_ms: now_ms() + 3_600_000, tenants: vec![], ..batch.clone() };
    let refused = connector.send(Bytes::from(frame::encode(&ahead))).await.unwrap();
    assert_eq!(refused.status, Status::Rejected, "{refused:?}");
    assert!(refused.reason.contains("ahead of the core's clock"), "{refused:?}");

    let read = pop.read_key(0);
    let s = pop.series(&read, 77, (second as u64 - 5) * 1000, (second as u64 + 5) * 1000, "1s").await;
    assert_eq!(s["total"]["clicks"], 7);
    assert_eq!(s["total"]["spend_micros"], 520);
    assert_eq!(s["total"]["users"], 2);
    let m = pop.series(&read, 77, (second as u64 - 120) * 1000, (second as u64 + 120) * 1000, "1m").await;
    assert_eq!(m["total"]["clicks"], 7);

    let metrics = pop.client.get(&format!("{}/metrics", state.core_http), None).await.unwrap().text();
    assert!(metrics.contains("tally_core_batches_rejected_total 5"), "{metrics}");
    assert!(metrics.contains("tally_core_batches_conflicting_total 1"), "{metrics}");
    assert!(metrics.contains("tally_core_batches_refused_identity_total 2"), "{metrics}");
    assert!(metrics.contains("tally_core_connections_unauthenticated_total 2"), "{metrics}");

    // Key rotation: both keys while moving, then only the new one.
    pop.pop.enroll("test-edge", vec![fingerprint(&first_key), fingerprint(&second_key)]).await.unwrap();
    let state = &pop.pop.state;
    let connect = |identity| Connector::new(state.core_quic, "localhost", &state.core_cert, identity).unwrap();
    for k in [&first_key, &second_key] {
        assert_eq!(connect(Some(k)).send(good_frame.clone()).await.unwrap().status, Status::Duplicate);
    }
    pop.pop.enroll("test-edge", vec![fingerprint(&second_key)]).await.unwrap();
    let state = &pop.pop.state;
    let connect = |identity| Connector::new(state.core_quic, "localhost", &state.core_cert, identity).unwrap();
    assert!(connect(Some(&first_key)).send(good_frame.clone()).await.is_err(), "a dropped key was still served");
    assert_eq!(connect(Some(&second_key)).send(good_frame).await.unwrap().status, Status::Duplicate);
    assert!(metrics.contains("tally_core_batches_unreadable_version_total 1"), "{metrics}");
    assert!(metrics.contains("tally_core_batches_duplicate_total 4"), "{metrics}");
    pop.pop.stop().await;
}

async fn futures_like_join(connector: &Connector, frame: &[u8], n: usize) -> Vec<Status> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let c = connector.clone();
        let f = Bytes::copy_from_slice(frame);
        tasks.spawn(async move { c.send(f).await.unwrap().status });
    }
    let mut out = Vec::new();
    while let Some(s) = tasks.join_next().await {
        out.push(s.unwrap());
    }
    out
}

/// The core is killed; the edge keeps accepting and spooling; once the core
/// is back every batch is committed, and the counts are exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_wait_out_a_dead_core() {
    let mut pop = harness::start(&["acme"]).await;
    let key = pop.ingest_key(0);
    let mut generator = ClickGen::new(GenOptions { seed: 11, ads: 3, duplicate_share: 0.05, ..GenOptions::default() });
    let now = now_ms();
    let ok = |r: tally_http::client::Reply| assert!(r.status.is_success(), "{}", r.text());
    ok(pop.post(&key, "application/json", json_array(&generator.events(300, now))).await);
    pop.pop.kill_core().await;
    for _ in 0..5 {
        ok(pop.post(&key, "application/json", json_array(&generator.events(300, now))).await);
    }
    pop.pop.restart_core().await.unwrap();
    ok(pop.post(&key, "application/json", json_array(&generator.events(300, now))).await);
    pop.wait_for_totals(&pop.read_key(0), &generator, &[1, 2, 3], now - 10_000, now + 1_000).await;
    pop.pop.stop().await;
}
