//! API keys: who may call the gateway, for which tenant, with which role.
//!
//! A key reads `frk_<id>_<secret>`: the id (12 hex characters) finds its row, the secret (32
//! random bytes, base64url) proves it. Only an argon2id hash of the secret is stored, and the
//! key is shown once, when created. Verifying costs tens of milliseconds of CPU by design, so
//! [`KeyVerifier`] remembers answers for a while.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row};
use tokio::sync::Semaphore;

use crate::config::PostgresSettings;

/// What a caller may do. Ordered: each role may do what the ones below it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The dashboard and reads (results, alerts).
    Viewer,
    /// Requests and jobs, batching settings, purges, autoscale plans.
    Operator,
    /// Keys, index applies, deploys and rollbacks.
    Admin,
}

impl Role {
    /// The role's name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, not `write_str`, so tables can align roles with `{:<8}`.
        f.pad(self.as_str())
    }
}

impl FromStr for Role {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(KeyError::InvalidInput {
                field: "role",
                message: format!("`{}` is no role (viewer, operator, admin)", other.escape_debug()),
            }),
        }
    }
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// Who: `key:<id>` for an API key.
    pub subject: String,
    /// The tenant it acts for.
    pub tenant: String,
    /// What it may do.
    pub role: Role,
}

/// A key just created: the only time its full text exists.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedKey {
    /// The id (the public part, used to revoke it).
    pub id: String,
    /// The whole key, `frk_<id>_<secret>`, for the caller to keep.
    pub key: String,
    /// Its tenant.
    pub tenant: String,
    /// Its role.
    pub role: Role,
    /// What it is for.
    pub name: String,
}

/// A stored key, without its hash.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    /// The id.
    pub id: String,
    /// Its tenant.
    pub tenant: String,
    /// Its role.
    pub role: Role,
    /// What it is for.
    pub name: String,
    /// When it was created (RFC 3339, UTC).
    pub created_at: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
}

/// Why a key could not be created, revoked, listed or verified.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// PostgreSQL could not be reached or migrated.
    #[error("key store: {0}")]
    Store(#[from] crate::db::ConnectError),
    /// A statement failed.
    #[error("{doing}: {source}")]
    Query {
        /// What was being done.
        doing: &'static str,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// Hashing or verifying failed for a reason other than a wrong secret.
    #[error("argon2: {0}")]
    Hash(String),
    /// A verification that another request for the same key started failed; every request that
    /// waited on it gets the same error.
    #[error(transparent)]
    Shared(Arc<KeyError>),
    /// A value given for a new key is not acceptable.
    #[error("invalid {field}: {message}")]
    InvalidInput {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The key table in PostgreSQL. Cheap to clone; clones share the pool and the argon2 permits.
#[derive(Debug, Clone)]
pub struct ApiKeyStore {
    pool: PgPool,
    /// Bounds the argon2 runs in flight. Each holds about 19 MiB (argon2's default memory cost)
    /// on a blocking thread, and tokio allows 512 of those: a flood of well-formed keys with a
    /// real id and wrong secrets (each a cache miss) would otherwise cost gigabytes. The work is
    /// CPU-bound, so more runs than cores would not finish any sooner; the rest wait their turn.
    argon2_permits: Arc<Semaphore>,
}

impl ApiKeyStore {
    /// Connects (to `schema` when given, creating it) and applies the migrations.
    pub async fn connect(settings: &PostgresSettings, schema: Option<&str>) -> Result<ApiKeyStore, KeyError> {
        let pool = crate::db::connect_migrated(settings, schema, "frontier-keys", 4).await?;
        Ok(ApiKeyStore::over(pool))
    }

    /// A store over `pool`, whose migrations are assumed applied.
    fn over(pool: PgPool) -> ApiKeyStore {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        ApiKeyStore { pool, argon2_permits: Arc::new(Semaphore::new(cores)) }
    }

    /// Runs `work` (an argon2 hash or verification) on a blocking thread once a permit is free.
    async fn argon2<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, KeyError> + Send + 'static,
    ) -> Result<T, KeyError> {
        let permit = Arc::clone(&self.argon2_permits)
            .acquire_owned()
            .await
            .map_err(|error| KeyError::Hash(format!("the argon2 permits are closed: {error}")))?;
        // The permit goes with the work, not the caller: a request dropped mid-verification
        // leaves its argon2 run going, and that run must still count against the bound.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|error| KeyError::Hash(format!("the argon2 task failed: {error}")))?
    }

    /// The pool, for statements the store does not offer (tests dropping their schema).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates a key for `tenant` with `role`; the returned key is the only copy of its secret.
    pub async fn create(&self, tenant: &str, role: Role, name: &str) -> Result<CreatedKey, KeyError> {
        check_tenant(tenant)?;
        check_name(name)?;
        let (id, secret) = new_key();
        let key = format_key(&id, &secret);
        let hash = self.argon2(move || hash_secret(&secret)).await?;
        sqlx::query("INSERT INTO api_keys (id, tenant, role, name, secret_hash) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(tenant)
            .bind(role.as_str())
            .bind(name)
            .bind(&hash)
            .execute(&self.pool)
            .await
            .map_err(|source| KeyError::Query { doing: "storing the key", source })?;
        Ok(CreatedKey { id, key, tenant: tenant.into(), role, name: name.into() })
    }

    /// Revokes the key `id`: the tenant of the live key revoked, `None` when there was none.
    pub async fn revoke(&self, id: &str) -> Result<Option<String>, KeyError> {
        sqlx::query_scalar(
            "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING tenant",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(|source| KeyError::Query { doing: "revoking the key", source })
    }

    /// Every key, newest first, without hashes.
    pub async fn list(&self) -> Result<Vec<KeyInfo>, KeyError> {
        let rows = sqlx::query(
            "SELECT id, tenant, role, name, \
                    to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS created, \
                    to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS revoked \
             FROM api_keys ORDER BY created_at DESC, id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|source| KeyError::Query { doing: "listing keys", source })?;
        rows.iter()
            .map(|row| {
                let field = |name: &str| {
                    row.try_get::<String, _>(name)
                        .map_err(|source| KeyError::Query { doing: "reading the key list", source })
                };
                Ok(KeyInfo {
                    id: field("id")?,
                    tenant: field("tenant")?,
                    role: field("role")?.parse()?,
                    name: field("name")?,
                    created_at: field("created")?,
                    revoked_at: row
                        .try_get::<Option<String>, _>("revoked")
                        .map_err(|source| KeyError::Query { doing: "reading the key list", source })?,
                })
            })
            .collect()
    }

    /// The identity of `presented` if it is a live key; `None` for a malformed, unknown,
    /// revoked or wrong one (the caller cannot tell which).
    pub async fn verify(&self, presented: &str) -> Result<Option<Identity>, KeyError> {
        let Some((id, secret)) = parse(presented) else { return Ok(None) };
        let row = sqlx::query("SELECT tenant, role, secret_hash FROM api_keys WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|source| KeyError::Query { doing: "looking up the key", source })?;
        let Some(row) = row else { return Ok(None) };
        let read = |name: &str| row.try_get::<String, _>(name);
        let (tenant, role, hash) = match (read("tenant"), read("role"), read("secret_hash")) {
            (Ok(tenant), Ok(role), Ok(hash)) => (tenant, role, hash),
            (Err(source), ..) | (_, Err(source), _) | (.., Err(source)) => {
                return Err(KeyError::Query { doing: "reading the key", source });
            }
        };
        let secret = secret.to_owned();
        let matches = self
            .argon2(move || {
                let parsed = PasswordHash::new(&hash).map_err(|error| KeyError::Hash(error.to_string()))?;
                Ok(Argon2::default().verify_password(secret.as_bytes(), &parsed).is_ok())
            })
            .await?;
        if !matches {
            return Ok(None);
        }
        Ok(Some(Identity { subject: format!("key:{id}"), tenant, role: role.parse()? }))
    }
}

/// [`ApiKeyStore::verify`] with its answers remembered for a while, keyed by a SHA-256 of the
/// presented key (the key itself is never kept). Cheap to clone.
#[derive(Clone)]
pub struct KeyVerifier {
    store: ApiKeyStore,
    cache: moka::future::Cache<[u8; 32], Option<Identity>>,
}

impl std::fmt::Debug for KeyVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyVerifier").field("remembered", &self.cache.entry_count()).finish()
    }
}

impl KeyVerifier {
    /// Remembers up to `capacity` answers for `ttl` each. Both answers are remembered: a wrong
    /// key costs one argon2 run per `ttl`, not one per request, and a revoked key keeps working
    /// on every gateway that verified it for up to `ttl` after `frontier keys revoke` (there is
    /// no revocation broadcast; the TTL is the bound). Store errors are not remembered.
    pub fn new(store: ApiKeyStore, ttl: Duration, capacity: u64) -> KeyVerifier {
        KeyVerifier { store, cache: moka::future::Cache::builder().max_capacity(capacity).time_to_live(ttl).build() }
    }

    /// The identity of `presented`, from memory or the store. Malformed keys are refused
    /// without a lookup and not remembered (they cost nothing to refuse again).
    pub async fn verify(&self, presented: &str) -> Result<Option<Identity>, KeyError> {
        if parse(presented).is_none() {
            return Ok(None);
        }
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Concurrent requests with the same key wait for one verification.
        self.cache.try_get_with(digest, self.store.verify(presented)).await.map_err(KeyError::Shared)
    }
}

/// The id and secret of a well-formed key.
fn parse(presented: &str) -> Option<(&str, &str)> {
    let rest = presented.strip_prefix("frk_")?;
    let (id, secret) = rest.split_once('_')?;
    let id_ok = id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let secret_ok = secret.len() == 43 && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (id_ok && secret_ok).then_some((id, secret))
}

/// A fresh id (6 random bytes in hex) and secret (32 random bytes, base64url).
fn new_key() -> (String, String) {
    let mut id = [0_u8; 6];
    rand::rng().fill_bytes(&mut id);
    let mut secret = [0_u8; 32];
    rand::rng().fill_bytes(&mut secret);
    (hex::encode(id), URL_SAFE_NO_PAD.encode(secret))
}

/// The key as handed out: what [`parse`] reads back.
fn format_key(id: &str, secret: &str) -> String {
    format!("frk_{id}_{secret}")
}

/// An argon2id PHC string of `secret` (argon2's default, recommended parameters). CPU-heavy:
/// call it through [`ApiKeyStore::argon2`].
fn hash_secret(secret: &str) -> Result<String, KeyError> {
    let mut salt = [0_u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|error| KeyError::Hash(error.to_string()))?;
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| KeyError::Hash(error.to_string()))
}

fn check_tenant(tenant: &str) -> Result<(), KeyError> {
    let ok = (1..=64).contains(&tenant.len())
        && tenant.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(KeyError::InvalidInput { field: "tenant", message: "must be 1-64 of A-Z a-z 0-9 . _ -".into() })
    }
}

fn check_name(name: &str) -> Result<(), KeyError> {
    if (1..=200).contains(&name.chars().count()) && !name.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(KeyError::InvalidInput { field: "name", message: "must be 1-200 characters, none a control".into() })
    }
}

#[cfg(test)]
mod tests {
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

    use super::*;

    const WELL_FORMED: &str = "frk_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    /// A store whose pool points at a port nothing listens on: any statement would fail, so a
    /// test using it shows that the answer came without PostgreSQL.
    fn store_without_database() -> ApiKeyStore {
        let options = PgConnectOptions::new().host("127.0.0.1").port(1).username("nobody").database("nothing");
        ApiKeyStore::over(PgPoolOptions::new().acquire_timeout(Duration::from_secs(1)).connect_lazy_with(options))
    }

    #[test]
    fn a_well_formed_key_parses_into_id_and_secret() {
        assert_eq!(parse(WELL_FORMED), Some(("0123456789ab", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")));
    }

    #[test]
    fn a_new_key_parses_back_into_its_id_and_secret() {
        for _ in 0..100 {
            let (id, secret) = new_key();
            let key = format_key(&id, &secret);
            assert_eq!(parse(&key), Some((id.as_str(), secret.as_str())), "{key}");
        }
    }

    #[test]
    fn new_keys_differ() {
        let (first_id, first_secret) = new_key();
        let (second_id, second_secret) = new_key();
        assert_ne!(first_id, second_id);
        assert_ne!(first_secret, second_secret);
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        let upper_id = WELL_FORMED.replace("0123456789ab", "0123456789AB");
        let padded = format!("{WELL_FORMED}=");
        let spaced = format!(" {WELL_FORMED}");
        for key in [
            "",
            "frk_",
            "frk_0123456789ab",
            "frk_0123456789ab_",
            "frk_XYZ456789abc_AAAA",
            "sk_0123456789ab_AAAA",
            &WELL_FORMED[..50],
            &upper_id,
            &padded,
            &spaced,
        ] {
            assert_eq!(parse(key), None, "{key}");
        }
    }

    #[tokio::test]
    async fn a_malformed_key_is_refused_without_the_database() {
        let store = store_without_database();
        assert_eq!(store.verify("frk_nothex_secret").await.unwrap(), None);
        let verifier = KeyVerifier::new(store, Duration::from_secs(60), 10);
        assert_eq!(verifier.verify("not a key").await.unwrap(), None);
        assert_eq!(verifier.verify(&WELL_FORMED[..50]).await.unwrap(), None);
        verifier.cache.run_pending_tasks().await;
        assert_eq!(verifier.cache.entry_count(), 0, "malformed keys are not remembered");
    }

    #[tokio::test]
    async fn a_store_error_is_not_remembered_as_a_refusal() {
        let verifier = KeyVerifier::new(store_without_database(), Duration::from_secs(60), 10);
        assert!(matches!(verifier.verify(WELL_FORMED).await, Err(KeyError::Shared(_))));
        verifier.cache.run_pending_tasks().await;
        assert_eq!(verifier.cache.entry_count(), 0);
        assert!(verifier.verify(WELL_FORMED).await.is_err(), "asked again, not answered from memory");
    }

    #[tokio::test]
    async fn a_bad_tenant_or_name_is_refused_before_the_database_naming_the_field() {
        let store = store_without_database();
        for (tenant, name, field) in [
            ("acme corp", "ok", "tenant"),
            ("", "ok", "tenant"),
            (&"t".repeat(65), "ok", "tenant"),
            ("acme", "", "name"),
            ("acme", "line\nbreak", "name"),
            ("acme", &"n".repeat(201), "name"),
        ] {
            match store.create(tenant, Role::Viewer, name).await {
                Err(KeyError::InvalidInput { field: refused, .. }) => assert_eq!(refused, field, "{tenant:?} {name:?}"),
                other => panic!("{tenant:?} {name:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn tenants_and_names_at_their_limits_are_accepted() {
        assert!(check_tenant("acme-corp_2.eu").is_ok());
        assert!(check_tenant(&"t".repeat(64)).is_ok());
        assert!(check_name("Grafana dashboard (read only) — prod").is_ok());
        assert!(check_name(&"é".repeat(200)).is_ok(), "the limit counts characters, not bytes");
    }

    #[test]
    fn an_argon2id_hash_verifies_its_secret_only() {
        let hash = hash_secret("right").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(Argon2::default().verify_password(b"right", &parsed).is_ok());
        assert!(Argon2::default().verify_password(b"wrong", &parsed).is_err());
    }

    #[test]
    fn roles_are_ordered_by_what_they_may_do() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
    }

    #[test]
    fn roles_parse_from_their_names_only() {
        for role in [Role::Viewer, Role::Operator, Role::Admin] {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            assert_eq!(role.to_string(), role.as_str());
            assert_eq!(serde_json::to_value(role).unwrap(), role.as_str());
        }
        for wrong in ["root", "Admin", " admin", ""] {
            assert!(matches!(wrong.parse::<Role>(), Err(KeyError::InvalidInput { field: "role", .. })), "{wrong:?}");
        }
    }
}
