//! Tenants and their keys.
//!
//! A tenant has three keys, one per role: `ingest` (edges accept clicks with
//! it), `read` (dashboards and billing queries) and `admin` (plugin registry,
//! later). The tenant of a request always comes from its key, never from the
//! request body. Keys are unique across all tenants and roles, so a key alone
//! names both its tenant and its role.
//!
//! The tenants file is TOML:
//! ```toml
//! [[tenant]]
//! id = "acme"
//! ingest_key = "..."
//! read_key = "..."
//! admin_key = "..."
//! # optional:
//! previous_ingest_key = "..."     # also valid while clients move to the new key
//! previous_read_key = "..."       # (and previous_admin_key): remove after the rotation
//! redirect_secret = "..."         # signs click-redirect links (HMAC-SHA256)
//! allowed_origins = ["https://news.example"]   # CORS for browser posts
//! max_events_per_sec = 50000      # per edge; past it the edge answers 429
//! dimensions = ["country", "device"]   # enrichment its filter may set
//! ```
//!
//! Key rotation: put the new key in `ingest_key` (or `read_key`, `admin_key`)
//! and the old one in `previous_ingest_key`, reload, move the clients, then
//! drop the previous key and reload again. Both keys name the same tenant and
//! role meanwhile. Processes hold the file as [`LiveTenants`], which a reload
//! replaces whole: a file that does not validate is refused and the previous
//! one stays in force.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config_file::{load_toml, ConfigError};

/// A validated tenant id: 1-64 of `[a-z0-9_-]`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

impl TenantId {
    pub fn parse(s: &str) -> Result<TenantId, String> {
        let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
        if s.is_empty() || s.len() > 64 {
            return Err("tenant id must be 1-64 characters".into());
        }
        if !s.chars().all(ok_char) || !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err("tenant id must be [a-z0-9_-] and start with a letter or digit".into());
        }
        Ok(TenantId(s.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for TenantId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Ingest,
    Read,
    Admin,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TenantSpec {
    pub id: String,
    pub ingest_key: String,
    pub read_key: String,
    pub admin_key: String,
    /// The key being rotated out of each role, still valid until removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_ingest_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_read_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_admin_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_events_per_sec: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dimensions: Vec<String>,
}

/// Most dimensions a tenant may declare.
pub const MAX_DIMENSIONS: usize = 8;

/// The dimension the edge itself sets, reserved: clicks a failing filter let
/// through under the fail-open policy carry `filter` = [`FILTER_FAILED_OPEN`]
/// (`GET /v1/dimensions/filter` counts them).
pub const FILTER_DIMENSION: &str = "filter";
pub const FILTER_FAILED_OPEN: &str = "failed_open";

/// What a tenant allows beyond its keys.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub redirect_secret: Option<String>,
    pub allowed_origins: Vec<String>,
    pub max_events_per_sec: Option<u32>,
    /// Enrichment dimensions its filter may set (others are ignored).
    pub dimensions: Vec<String>,
}

impl Policy {
    /// Whether a browser page from `origin` may post for this tenant.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|o| o == origin)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TenantsFile {
    #[serde(default, rename = "tenant")]
    pub tenants: Vec<TenantSpec>,
}

#[derive(Debug, thiserror::Error)]
pub enum TenantsError {
    #[error("tenants file: {0}")]
    File(#[from] ConfigError),
    #[error("tenant {tenant:?}: {message}")]
    Invalid { tenant: String, message: String },
}

/// Minimum key length, so keys cannot be guessed.
pub const MIN_KEY_LEN: usize = 16;

/// The tenants a running process serves: replaced whole by a reload
/// (SIGHUP), read per request. Readers take the current set and keep it for
/// the request, so a request never sees half of two files.
#[derive(Debug, Default)]
pub struct LiveTenants(std::sync::RwLock<Arc<Tenants>>);

impl LiveTenants {
    pub fn new(tenants: Tenants) -> LiveTenants {
        LiveTenants(std::sync::RwLock::new(Arc::new(tenants)))
    }

    pub fn current(&self) -> Arc<Tenants> {
        self.0.read().expect("tenants lock poisoned").clone()
    }

    pub fn replace(&self, tenants: Tenants) {
        *self.0.write().expect("tenants lock poisoned") = Arc::new(tenants);
    }

    /// Loads `path` again; on any error the current tenants stay in force.
    pub fn reload(&self, path: &Path) -> Result<usize, TenantsError> {
        let tenants = Tenants::load(path)?;
        let count = tenants.ids().len();
        self.replace(tenants);
        Ok(count)
    }
}

/// Key -> (tenant, role) lookup built from a validated tenants file.
#[derive(Debug, Clone, Default)]
pub struct Tenants {
    by_key: HashMap<String, (TenantId, Role)>,
    ids: Vec<TenantId>,
    policies: HashMap<TenantId, Policy>,
}

impl Tenants {
    pub fn load(path: &Path) -> Result<Tenants, TenantsError> {
        let file: TenantsFile = load_toml(path)?;
        Tenants::from_specs(&file.tenants)
    }

    pub fn from_specs(specs: &[TenantSpec]) -> Result<Tenants, TenantsError> {
        let mut tenants = Tenants::default();
        for spec in specs {
            let invalid = |message: String| TenantsError::Invalid { tenant: spec.id.clone(), message };
            let id = TenantId::parse(&spec.id).map_err(invalid)?;
            if tenants.ids.contains(&id) {
                return Err(invalid("listed twice".into()));
            }
            let current = [(Some(&spec.ingest_key), Role::Ingest), (Some(&spec.read_key), Role::Read), (Some(&spec.admin_key), Role::Admin)];
            let previous = [
                (spec.previous_ingest_key.as_ref(), Role::Ingest),
                (spec.previous_read_key.as_ref(), Role::Read),
                (spec.previous_admin_key.as_ref(), Role::Admin),
            ];
            for (key, role) in current.into_iter().chain(previous).filter_map(|(k, r)| Some((k?, r))) {
                if key.len() < MIN_KEY_LEN || !key.chars().all(|c| c.is_ascii_graphic()) {
                    return Err(invalid(format!("{role:?} key must be at least {MIN_KEY_LEN} printable ASCII characters")));
                }
                if tenants.by_key.insert(key.clone(), (id.clone(), role)).is_some() {
                    return Err(invalid(format!("{role:?} key is already used by another tenant or role")));
                }
            }
            if spec.redirect_secret.as_ref().is_some_and(|s| s.len() < MIN_KEY_LEN) {
                return Err(invalid(format!("redirect_secret must be at least {MIN_KEY_LEN} characters")));
            }
            let ok_dimension = |d: &String| !d.is_empty() && d.len() <= 64 && d.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if spec.dimensions.len() > MAX_DIMENSIONS || !spec.dimensions.iter().all(ok_dimension) {
                return Err(invalid(format!("at most {MAX_DIMENSIONS} dimensions, each 1-64 of [a-z0-9_]")));
            }
            if spec.dimensions.iter().any(|d| d == FILTER_DIMENSION) {
                return Err(invalid(format!("dimension {FILTER_DIMENSION:?} is reserved: the edge tags clicks a failing filter let through with it")));
            }
            let policy = Policy {
                redirect_secret: spec.redirect_secret.clone(),
                allowed_origins: spec.allowed_origins.clone(),
                max_events_per_sec: spec.max_events_per_sec,
                dimensions: spec.dimensions.clone(),
            };
            tenants.policies.insert(id.clone(), policy);
            tenants.ids.push(id);
        }
        Ok(tenants)
    }

    /// The tenant a key authenticates for `role`, if any.
    pub fn authenticate(&self, key: &str, role: Role) -> Option<&TenantId> {
        match self.by_key.get(key) {
            Some((tenant, r)) if *r == role => Some(tenant),
            _ => None,
        }
    }

    /// The tenant a bearer `Authorization` header value authenticates.
    pub fn authenticate_bearer(&self, header: Option<&str>, role: Role) -> Option<&TenantId> {
        let key = header?.strip_prefix("Bearer ")?.trim();
        self.authenticate(key, role)
    }

    pub fn ids(&self) -> &[TenantId] {
        &self.ids
    }

    /// A tenant by id (e.g. from a URL path), with its policy.
    pub fn get(&self, id: &str) -> Option<(&TenantId, &Policy)> {
        self.policies.get_key_value(id)
    }

    pub fn policy(&self, id: &TenantId) -> &Policy {
        self.policies.get(id).expect("every tenant has a policy")
    }

    /// Whether any tenant lets `origin` post from a browser.
    pub fn any_allows_origin(&self, origin: &str) -> bool {
        self.policies.values().any(|p| p.allows_origin(origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, n: u8) -> TenantSpec {
        let k = |r: &str| format!("{id}-{r}-key-{n:04}-xxxxxxxx");
        TenantSpec {
            id: id.into(),
            ingest_key: k("ingest"),
            read_key: k("read"),
            admin_key: k("admin"),
            previous_ingest_key: None,
            previous_read_key: None,
            previous_admin_key: None,
            redirect_secret: None,
            allowed_origins: vec![],
            max_events_per_sec: None,
            dimensions: vec!["country".into()],
        }
    }

    #[test]
    fn keys_name_tenant_and_role() {
        let t = Tenants::from_specs(&[spec("a", 1), spec("b", 2)]).unwrap();
        let a = spec("a", 1);
        assert_eq!(t.authenticate(&a.ingest_key, Role::Ingest).unwrap().as_str(), "a");
        assert!(t.authenticate(&a.ingest_key, Role::Read).is_none());
        assert_eq!(t.authenticate_bearer(Some(&format!("Bearer {}", a.read_key)), Role::Read).unwrap().as_str(), "a");
        assert!(t.authenticate_bearer(Some(&a.read_key), Role::Read).is_none());
        assert!(t.authenticate_bearer(None, Role::Read).is_none());
    }

    #[test]
    fn rejects_bad_files() {
        let mut dup = spec("b", 2);
        dup.read_key = spec("a", 1).ingest_key;
        assert!(Tenants::from_specs(&[spec("a", 1), dup]).is_err());
        assert!(Tenants::from_specs(&[spec("a", 1), spec("a", 2)]).is_err());
        let mut short = spec("a", 1);
        short.admin_key = "short".into();
        assert!(Tenants::from_specs(&[short]).is_err());
        assert!(Tenants::from_specs(&[spec("Bad!", 1)]).is_err());
        let mut reserved = spec("a", 1);
        reserved.dimensions = vec!["country".into(), FILTER_DIMENSION.into()];
        assert!(Tenants::from_specs(&[reserved]).unwrap_err().to_string().contains("reserved"));
    }

    #[test]
    fn a_rotation_has_two_keys_per_role_then_one() {
        let new = spec("a", 2);
        let old = spec("a", 1);
        let rotating = TenantSpec { previous_ingest_key: Some(old.ingest_key.clone()), ..new.clone() };
        let live = LiveTenants::new(Tenants::from_specs(&[old.clone()]).unwrap());
        live.replace(Tenants::from_specs(&[rotating]).unwrap());
        let t = live.current();
        assert_eq!(t.authenticate(&old.ingest_key, Role::Ingest).unwrap().as_str(), "a");
        assert_eq!(t.authenticate(&new.ingest_key, Role::Ingest).unwrap().as_str(), "a");
        assert!(t.authenticate(&old.ingest_key, Role::Read).is_none(), "a previous key keeps its role");
        live.replace(Tenants::from_specs(std::slice::from_ref(&new)).unwrap());
        assert!(live.current().authenticate(&old.ingest_key, Role::Ingest).is_none());
        assert!(t.authenticate(&old.ingest_key, Role::Ingest).is_some(), "a request holding the old set finishes with it");
        // A previous key is held to the same rules as the current ones.
        let reused = TenantSpec { previous_read_key: Some(new.ingest_key.clone()), ..new.clone() };
        assert!(Tenants::from_specs(&[reused]).is_err());
        let short = TenantSpec { previous_admin_key: Some("short".into()), ..new };
        assert!(Tenants::from_specs(&[short]).is_err());
    }

    #[test]
    fn a_bad_file_on_reload_keeps_the_current_tenants() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tenants.toml");
        let live = LiveTenants::new(Tenants::from_specs(&[spec("a", 1)]).unwrap());
        std::fs::write(&path, "[[tenant]]\nid = \"b\"\ningest_key = \"short\"\n").unwrap();
        assert!(live.reload(&path).is_err());
        assert_eq!(live.current().ids()[0].as_str(), "a");
        std::fs::write(&path, toml::to_string(&TenantsFile { tenants: vec![spec("b", 1)] }).unwrap()).unwrap();
        assert_eq!(live.reload(&path).unwrap(), 1);
        assert_eq!(live.current().ids()[0].as_str(), "b");
    }

    #[test]
    fn tenant_ids() {
        assert!(TenantId::parse("acme-1_x").is_ok());
        assert!(TenantId::parse("").is_err());
        assert!(TenantId::parse("-a").is_err());
        assert!(TenantId::parse(&"a".repeat(65)).is_err());
    }
}
