//! The edge's registry sync against a fake registry: a component is run
//! only once its bytes match the manifest's sha256, a bad one leaves the
//! tenant's current filter in place, and the cache lets a restarted edge
//! run its filters without the registry.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use tokio::net::TcpListener;
use tokio::sync::watch;

use tally_edge::filter::registry::RegistrySync;
use tally_edge::filter::slot::Filters;
use tally_edge::metrics::Metrics;
use tally_filter::host::{FailurePolicy, FilterEngine, Limits, DEFAULT_INSTANCES};
use tally_filter::manifest::{sha256_hex, Manifest, TenantPlugins, VersionRef};
use tally_http::client::{ApiClient, Client, PinnedHttps};
use tally_http::limits::{Gate, ServerLimits};
use tally_http::serve::{Handler, Peer};
use tally_http::{reply, RequestBody, Response};
use tally_model::tenant::{LiveTenants, TenantId, TenantSpec, Tenants};

/// Serves one manifest and one blob, whatever their hashes say.
struct FakeRegistry {
    manifest: Mutex<Manifest>,
    blob: Mutex<Vec<u8>>,
}

impl Handler for FakeRegistry {
    async fn handle(self: Arc<Self>, req: http::Request<RequestBody>, _peer: Peer) -> Response {
        if reply::authorization(req.headers()) != Some("Bearer edge-token") {
            return reply::error(StatusCode::UNAUTHORIZED, "token");
        }
        if req.uri().path() == "/v1/registry/manifest" {
            return reply::json(StatusCode::OK, &*self.manifest.lock().unwrap());
        }
        reply::with_type(StatusCode::OK, self.blob.lock().unwrap().clone().into(), "application/wasm")
    }
}

fn noop() -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/target/wasm32-wasip2/release/tally_plugin_noop.wasm");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (build the plugins first)", path.display()))
}

fn tenants() -> Tenants {
    let k = |r: &str| format!("acme-{r}-key-0000-xxxxxxxx");
    let spec = TenantSpec {
        id: "acme".into(),
        ingest_key: k("ingest"),
        read_key: k("read"),
        admin_key: k("admin"),
        previous_ingest_key: None,
        previous_read_key: None,
        previous_admin_key: None,
        redirect_secret: None,
        allowed_origins: vec![],
        max_events_per_sec: None,
        dimensions: vec![],
    };
    Tenants::from_specs(&[spec]).unwrap()
}

fn manifest(sha256: &str) -> Manifest {
    let active = VersionRef { version: 1, sha256: sha256.into() };
    Manifest { tenants: vec![TenantPlugins { tenant: "acme".into(), policy: FailurePolicy::Open, active, candidate: None, limits: None }] }
}

#[tokio::test]
async fn components_run_only_when_their_hash_matches() {
    let bytes = noop();
    let fake = Arc::new(FakeRegistry { manifest: Mutex::new(manifest(&sha256_hex(&bytes))), blob: Mutex::new(b"\0asm tampered".to_vec()) });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = watch::channel(false);
    let server = tokio::spawn(tally_http::serve::serve(listener, None, fake.clone(), Gate::new(ServerLimits::default()), stopped));
    let cache = tempfile::tempdir().unwrap();
    let engine = FilterEngine::new(DEFAULT_INSTANCES).unwrap();
    let limits = Limits::new(16 << 20, Duration::from_secs(2));
    let acme = TenantId::parse("acme").unwrap();
    let sync = |filters: Arc<Filters>| {
        RegistrySync::new(
            &url,
            ApiClient::Plain(Client::new()),
            "edge-token",
            Duration::from_millis(10),
            cache.path().to_path_buf(),
            limits,
            engine.clone(),
            Arc::new(LiveTenants::new(tenants())),
            filters,
            Arc::new(Metrics::new()),
        )
    };

    // Tampered bytes: refused, nothing runs, nothing is cached.
    let filters = Arc::new(Filters::default());
    let mut s = sync(filters.clone());
    assert_eq!(s.poll_once().await, Ok(false));
    assert!(filters.get(&acme).is_none());
    assert!(!cache.path().join("manifest.json").exists());

    // The right bytes: verified, compiled, swapped in, cached.
    *fake.blob.lock().unwrap() = bytes.clone();
    assert_eq!(s.poll_once().await, Ok(true));
    assert_eq!(filters.get(&acme).unwrap().active.version, 1);
    assert_eq!(s.poll_once().await, Ok(false), "an unchanged manifest changes nothing");

    // A restarted edge, registry gone: the cache is enough.
    let _ = stop.send(true);
    server.await.unwrap();
    let filters = Arc::new(Filters::default());
    let mut restarted = sync(filters.clone());
    restarted.apply_cached().await;
    assert!(filters.get(&acme).unwrap().active.plugin.is_ok());
    assert!(restarted.poll_once().await.is_err(), "the registry is down");
    assert!(filters.get(&acme).is_some(), "and the filter stays");
}

/// Over `https://` the edge trusts only the core's certificate: the
/// registry answers through it, and a server with another certificate is
/// not believed (the edge token is never sent to it).
#[tokio::test]
async fn https_registry_is_pinned_to_the_cores_certificate() {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let names = vec!["localhost".to_string()];
    let core = tally_http::tls::load_or_create(dirs.0.path(), "core", &names).unwrap();
    let stranger = tally_http::tls::load_or_create(dirs.1.path(), "core", &names).unwrap();
    let fake = Arc::new(FakeRegistry { manifest: Mutex::new(manifest(&sha256_hex(b"x"))), blob: Mutex::new(Vec::new()) });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/v1/registry/manifest", listener.local_addr().unwrap());
    let tls = tokio_rustls::TlsAcceptor::from(tally_http::tls::server_config(&core, &[b"http/1.1"], false).unwrap());
    let (stop, stopped) = watch::channel(false);
    let server = tokio::spawn(tally_http::serve::serve(listener, Some(tls), fake, Gate::new(ServerLimits::default()), stopped));

    let pinned = PinnedHttps::new(&core.cert_path, "localhost", None).unwrap();
    let reply = pinned.get(&url, Some("edge-token")).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(serde_json::from_slice::<Manifest>(&reply.body).unwrap().tenants[0].tenant, "acme");
    let wrong_ca = PinnedHttps::new(&stranger.cert_path, "localhost", None).unwrap();
    let err = wrong_ca.get(&url, Some("edge-token")).await.unwrap_err().to_string();
    assert!(err.contains("TLS"), "{err}");
    let wrong_name = PinnedHttps::new(&core.cert_path, "core.example", None).unwrap();
    assert!(wrong_name.get(&url, Some("edge-token")).await.is_err());
    assert!(pinned.get(&url.replace("https://", "http://"), None).await.is_err(), "https only");
    // Chosen by URL: https needs the certificate to trust.
    let err = ApiClient::for_url(&url, None, "localhost", None).err().expect("https without a certificate").to_string();
    assert!(err.contains("certificate to trust"), "{err}");
    let api = ApiClient::for_url(&url, Some(&core.cert_path), "localhost", None).unwrap();
    assert_eq!(api.get(&url, Some("edge-token")).await.unwrap().status, StatusCode::OK);
    stop.send(true).unwrap();
    server.await.unwrap();
}
