//! The plugin registry on disk: uploads are validated against the contract
//! within the limits the tenant's plugins will get, and survive a restart.
//!
//! Needs the example plugins built (`deploy/dev/test.sh` builds them first).

use std::path::PathBuf;

use tally_core::registry::state::Action;
use tally_core::registry::{Registry, RegistryError};

fn noop() -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../plugins/target/wasm32-wasip2/release/tally_plugin_noop.wasm");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (build the plugins first)", path.display()))
}

#[tokio::test]
async fn uploads_start_within_the_tenants_limits_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path(), 16 << 20).unwrap();

    // The no-op's memory starts at 17 pages (1.06 MiB): more than 1 MiB.
    registry.apply("acme", Action::Limits { memory_mb: 1, timeout_ms: 100, tags_per_click: None }).await.unwrap();
    match registry.push("acme", "noop.wasm", noop(), 1).await {
        Err(RegistryError::Invalid(why)) => assert!(why.contains("instantiating"), "{why}"),
        other => panic!("a component that cannot start within the tenant's limits was taken: {other:?}"),
    }
    assert!(registry.state("acme").versions.is_empty());
    // Another tenant, with the default limits, may upload the same bytes.
    let pushed = registry.push("globex", "noop.wasm", noop(), 2).await.unwrap();
    assert_eq!((pushed.version, pushed.created), (1, true));

    registry.apply("acme", Action::Limits { memory_mb: 2, timeout_ms: 100, tags_per_click: None }).await.unwrap();
    let pushed = registry.push("acme", "noop.wasm", noop(), 3).await.unwrap();
    assert_eq!(pushed.version, 1);
    // A well-formed component of another contract (0.1's shape) is refused,
    // and so is junk, each with the reason.
    let wrong = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../plugins/target/fixtures/wrong_world.wasm");
    let wrong = std::fs::read(&wrong).unwrap_or_else(|e| panic!("{}: {e} (deploy/dev/plugins-c.sh builds it)", wrong.display()));
    match registry.push("acme", "old.wasm", wrong, 4).await {
        Err(RegistryError::Invalid(why)) => assert!(why.contains("does not implement tally:filter/filter@0.2.0"), "{why}"),
        other => panic!("a component of another contract was taken: {other:?}"),
    }
    assert!(matches!(registry.push("acme", "junk.wasm", b"\0asm junk".to_vec(), 4).await, Err(RegistryError::Invalid(_))));
    assert!(matches!(registry.push("acme", "big.wasm", vec![0; 17 << 20], 5).await, Err(RegistryError::TooLarge(..))));

    // Reopened, the registry knows what it stored.
    drop(registry);
    let registry = Registry::open(dir.path(), 16 << 20).unwrap();
    registry.apply("acme", Action::Activate { version: 1 }).await.unwrap();
    let manifest = registry.manifest();
    let acme = manifest.tenants.iter().find(|t| t.tenant == "acme").unwrap();
    assert_eq!(acme.active.sha256, pushed.sha256);
    assert_eq!(registry.blob(&pushed.sha256).await.unwrap(), noop());

    // Limits the running version cannot start within are refused, and the
    // old ones stay.
    match registry.apply("acme", Action::Limits { memory_mb: 1, timeout_ms: 100, tags_per_click: None }).await {
        Err(e @ RegistryError::CannotStart { version: 1, .. }) => {
            let why = e.to_string();
            assert!(why.starts_with("version 1 cannot start within the tenant's limits (1 MiB, 100 ms): plugin v1: instantiating"), "{why}");
        }
        other => panic!("limits the active version cannot start within were taken: {other:?}"),
    }
    assert_eq!(registry.state("acme").limits.map(|l| l.memory_mb), Some(2));
    registry.apply("acme", Action::Limits { memory_mb: 3, timeout_ms: 100, tags_per_click: None }).await.unwrap();
}

/// A version uploaded under generous limits cannot be activated once the
/// tenant's limits are too tight for it.
#[tokio::test]
async fn rollout_steps_start_their_versions_within_the_limits() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path(), 16 << 20).unwrap();
    registry.push("acme", "noop.wasm", noop(), 1).await.unwrap();
    registry.apply("acme", Action::Limits { memory_mb: 1, timeout_ms: 100, tags_per_click: None }).await.unwrap();
    match registry.apply("acme", Action::Activate { version: 1 }).await {
        Err(RegistryError::CannotStart { version: 1, memory_mb: 1, .. }) => {}
        other => panic!("a version that cannot start was activated: {other:?}"),
    }
    assert_eq!(registry.state("acme").active, None);
    registry.apply("acme", Action::Limits { memory_mb: 2, timeout_ms: 100, tags_per_click: None }).await.unwrap();
    assert_eq!(registry.apply("acme", Action::Activate { version: 1 }).await.unwrap().active, Some(1));
}
