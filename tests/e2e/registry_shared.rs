//! The plugin registry shared by several cores (issue 10 item 3): two cores
//! on one ClickHouse with ZooKeeper, each with its own data directory. A
//! plugin pushed through core 1 and rolled out through core 2 is what both
//! manifests serve, core 2 serves the component it never received (from
//! ClickHouse), and the edge runs it. Two changes racing for one tenant:
//! one wins, the other is refused and changes nothing.

use std::path::PathBuf;
use std::time::Duration;

use http::StatusCode;
use serde_json::Value;
use tally::pop::EdgeSettings;
use tally::traffic::now_ms;
use tally::zookeeper::ZooKeeper;
use tally_core::clickhouse::Store;
use tally_core::config::{CoreConfig, ZooKeeperSection};
use tally_core::registry::shared::Shared;
use tally_core::registry::RegistryError;

use crate::harness::{self, post_until_acked, wait_for_filter_version, Pop, CONVERGE};

fn plugin(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../plugins/target/wasm32-wasip2/release/tally_plugin_{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (deploy/dev/test.sh builds the plugins first)", path.display()))
}

async fn manifest(pop: &Pop, core: usize, token: &str) -> Value {
    let reply = pop.client.get(&format!("http://{}/v1/registry/manifest", pop.pop.core_http_at(core)), Some(token)).await.expect("reading a manifest");
    assert_eq!(reply.status, StatusCode::OK, "core-{}: {}", core + 1, reply.text());
    reply.json().unwrap()
}

/// Waits until both cores' manifests name `active` (and no candidate,
/// or the given one) for acme, and returns them.
async fn wait_for_manifests(pop: &Pop, token: &str, want: impl Fn(&Value) -> bool) -> (Value, Value) {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let (one, two) = (manifest(pop, 0, token).await, manifest(pop, 1, token).await);
        if want(&one) && one == two {
            return (one, two);
        }
        assert!(tokio::time::Instant::now() < deadline, "the cores' manifests never agreed: core-1 {one}, core-2 {two}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn acme(manifest: &Value) -> &Value {
    manifest["tenants"].as_array().and_then(|t| t.iter().find(|t| t["tenant"] == "acme")).unwrap_or(&Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_pushed_through_one_core_and_rolled_out_through_another_is_served_by_both() {
    let dir = tempfile::Builder::new().prefix("tally-registry-shared-").tempdir().unwrap();
    let mut zookeeper = ZooKeeper::start(&dir.path().join("zookeeper")).await.expect("starting ZooKeeper");
    let mut pop = harness::start_with(&["acme"], EdgeSettings { registry_poll_ms: 100, ..EdgeSettings::default() }).await;
    pop.pop.add_cores(&zookeeper.connect_string(), 3000, 2).await.expect("starting a second core");
    let config = CoreConfig::load(&pop.pop.state.dir.join("core.toml")).expect("reading the first core's config");
    let token = config.registry.edge_token.clone().expect("the POP's cores have an edge token");
    let admin = pop.pop.state.tenants[0].admin_key.clone();
    let (core1, core2) = (format!("http://{}", pop.pop.core_http_at(0)), format!("http://{}", pop.pop.core_http_at(1)));

    // Push v1 (no-op) and v2 (the bot filter) through core 1, activate v1 there.
    let mut shas = Vec::new();
    for (name, version) in [("noop", 1), ("bot_filter", 2)] {
        let pushed = pop.client.send(http::Method::POST, &format!("{core1}/v1/plugins?name={name}.wasm"), Some(&admin), None, plugin(name)).await.unwrap();
        assert_eq!(pushed.status, StatusCode::CREATED, "{}", pushed.text());
        let pushed = pushed.json().unwrap();
        assert_eq!(pushed["version"], version);
        shas.push(pushed["sha256"].as_str().unwrap().to_string());
    }
    let activated = pop.client.post_json(&format!("{core1}/v1/plugins/rollout"), Some(&admin), r#"{"action":"activate","version":1}"#).await.unwrap();
    assert_eq!(activated.status, StatusCode::OK, "{}", activated.text());
    wait_for_manifests(&pop, &token, |m| acme(m)["active"]["version"] == 1).await;

    // Canary and promote v2 through core 2, which never received it.
    let canary = pop.client.post_json(&format!("{core2}/v1/plugins/rollout"), Some(&admin), r#"{"action":"canary","version":2,"percent":20}"#).await.unwrap();
    assert_eq!(canary.status, StatusCode::OK, "core 2 builds on core 1's pushes: {}", canary.text());
    assert_eq!(canary.json().unwrap()["versions"].as_array().unwrap().len(), 2, "{}", canary.text());
    let (one, _) = wait_for_manifests(&pop, &token, |m| acme(m)["candidate"]["percent"] == 20).await;
    assert_eq!(acme(&one)["active"]["version"], 1);
    wait_for_filter_version(&pop, "acme", "candidate", 2).await;
    let promoted = pop.client.post_json(&format!("{core2}/v1/plugins/rollout"), Some(&admin), r#"{"action":"promote"}"#).await.unwrap();
    assert_eq!(promoted.status, StatusCode::OK, "{}", promoted.text());
    let (one, two) = wait_for_manifests(&pop, &token, |m| acme(m)["active"]["version"] == 2 && acme(m)["candidate"].is_null()).await;
    assert_eq!(one, two);
    // Both cores' admins see the same state.
    let states: Vec<Value> = plugin_states(&pop, &admin, [&core1, &core2]).await;
    assert_eq!(states[0], states[1], "GET /v1/plugins differs between the cores");

    // The edge (it polls core 1) runs v2, and core 2 serves v2's bytes too.
    wait_for_filter_version(&pop, "acme", "active", 2).await;
    let sha = acme(&two)["active"]["sha256"].as_str().unwrap().to_string();
    let blob = pop.client.get(&format!("{core2}/v1/registry/blobs/{sha}"), Some(&token)).await.unwrap();
    assert_eq!(blob.status, StatusCode::OK, "{}", blob.text());
    assert_eq!(sha, shas[1], "the manifests name v2 by the sha256 core 1 stored it under");
    assert_eq!(blob.body.as_ref(), plugin("bot_filter").as_slice(), "core 2 served other bytes than core 1 was given");
    assert!(pop.pop.state.dir.join("core-2/registry/blobs").join(format!("{sha}.wasm")).exists(), "core 2 keeps what it fetched in its directory");
    let events = [format!(r#"{{"click_id":"bot-1","ad_id":7,"ts":{},"user_agent":"Googlebot/2.1","ip":"8.8.8.8"}}"#, now_ms())];
    let answer = post_until_acked(&pop.client, &pop.pop.state.edge_http, &pop.ingest_key(0), &events).await;
    assert_eq!(answer["accepted"], 0, "the promoted bot filter did not run: {answer}");

    // Two changes racing for acme, each from its own read: one wins, the
    // other is refused and changes nothing.
    let store = Store::connect(&pop.pop.state.clickhouse_http, None, None).await.unwrap();
    let section = ZooKeeperSection::new(zookeeper.connect_string());
    let (a, b) = (Shared::new(&section, store.clone()), Shared::new(&section, store));
    let (read_a, read_b) = (a.read("acme").await.unwrap(), b.read("acme").await.unwrap());
    assert_eq!(read_a.state, read_b.state);
    let (mut won, mut lost) = (read_a.state.clone(), read_b.state.clone());
    won.apply(tally_core::registry::state::Action::Canary { version: 1, percent: 30 }).unwrap();
    lost.apply(tally_core::registry::state::Action::Canary { version: 1, percent: 70 }).unwrap();
    a.write("acme", &won, read_a.version).await.expect("the first change is saved");
    let refused = b.write("acme", &lost, read_b.version).await;
    assert!(matches!(refused, Err(RegistryError::Conflict(ref t)) if t == "acme"), "the racing change was not refused: {refused:?}");
    assert_eq!(a.read("acme").await.unwrap().state, won, "the refused change changed something");
    let (one, _) = wait_for_manifests(&pop, &token, |m| acme(m)["candidate"]["percent"] == 30).await;
    assert_eq!(acme(&one)["active"]["version"], 2);

    // Through HTTP, steps racing from both cores: each is answered 200 or
    // 409 naming the other core, and the state is one a 200 answered.
    let mut racing = Vec::new();
    for (i, percent) in [11u8, 12, 13, 14, 15, 16].into_iter().enumerate() {
        let (client, admin, core) = (pop.client.clone(), admin.clone(), if i % 2 == 0 { core1.clone() } else { core2.clone() });
        racing.push(tokio::spawn(async move {
            let body = format!(r#"{{"action":"canary","version":1,"percent":{percent}}}"#);
            (percent, client.post_json(&format!("{core}/v1/plugins/rollout"), Some(&admin), body).await.unwrap())
        }));
    }
    let mut answered = Vec::new();
    for r in racing {
        let (percent, reply) = r.await.unwrap();
        match reply.status {
            StatusCode::OK => answered.push(percent),
            StatusCode::CONFLICT => assert!(reply.text().contains("another core changed tenant acme's plugins"), "{}", reply.text()),
            s => panic!("a racing step answered {s}: {}", reply.text()),
        }
    }
    assert!(!answered.is_empty(), "every racing step was refused");
    let now = a.read("acme").await.unwrap().state;
    let candidate = serde_json::to_value(now.candidate).unwrap();
    let percent = candidate["percent"].as_u64().unwrap_or_else(|| panic!("no canary after the race: {candidate}")) as u8;
    assert!(answered.contains(&percent), "the state ({percent}%) is none of the answered steps {answered:?}");

    pop.pop.stop().await;
    zookeeper.stop().await;
}

/// Each core's `GET /v1/plugins` for the tenant, once both agree or the wait ends.
async fn plugin_states(pop: &Pop, admin: &str, cores: [&String; 2]) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let mut states = Vec::new();
        for core in cores {
            states.push(pop.client.get(&format!("{core}/v1/plugins"), Some(admin)).await.unwrap().json().unwrap());
        }
        if states[0] == states[1] || tokio::time::Instant::now() >= deadline {
            return states;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
