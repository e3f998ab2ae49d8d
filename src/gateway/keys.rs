//! API keys: who may call the gateway, for which tenant, with which role.
//!
//! A key reads `frk_<id>_<secret>`: the id (12 hex characters) finds its row, the secret (32
//! random bytes, base64url) proves it. Only an argon2id hash of the secret is stored, and the
//! key is shown once, when created. Verifying costs tens of milliseconds of CPU by design, so
//! [`KeyVerifier`] remembers answers for a while.

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
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row};

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
    pub role: String,
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
    /// PostgreSQL could not be reached.
    #[error("connecting to PostgreSQL at {url}: {source} (is PostgreSQL up? `ops/stack up`)")]
    Connect {
        /// The URL, password masked.
        url: String,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// A statement failed.
    #[error("{doing}: {source}")]
    Query {
        /// What was being done.
        doing: &'static str,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// The migrations could not be applied.
    #[error("migrating the key table: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Hashing or verifying failed for a reason other than a wrong secret.
    #[error("argon2: {0}")]
    Hash(String),
    /// A value given for a new key is not acceptable.
    #[error("invalid {field}: {message}")]
    InvalidInput {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The key table in PostgreSQL. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ApiKeyStore {
    pool: PgPool,
}

impl ApiKeyStore {
    /// Connects (to `schema` when given, creating it) and applies the migrations.
    pub async fn connect(settings: &PostgresSettings, schema: Option<&str>) -> Result<ApiKeyStore, KeyError> {
        let url = crate::health::redact(&settings.url);
        let mut options = PgConnectOptions::from_str(&settings.url)
            .map_err(|source| KeyError::Connect { url: url.clone(), source })?
            .application_name("frontier-keys");
        if let Some(schema) = schema {
            check_schema(schema)?;
            options = options.options([("search_path", schema)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections.clamp(1, 4))
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|source| KeyError::Connect { url, source })?;
        let mut migrator = sqlx::migrate!();
        if let Some(schema) = schema {
            migrator.create_schema(schema.to_owned());
        }
        migrator.run(&pool).await?;
        Ok(ApiKeyStore { pool })
    }

    /// The pool, for statements the store does not offer (tests dropping their schema).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates a key for `tenant` with `role`; the returned key is the only copy of its secret.
    pub async fn create(&self, tenant: &str, role: Role, name: &str) -> Result<CreatedKey, KeyError> {
        check_tenant(tenant)?;
        check_name(name)?;
        let mut bytes = [0_u8; 6];
        rand::rng().fill_bytes(&mut bytes);
        let id = hex::encode(bytes);
        let mut secret = [0_u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let secret = URL_SAFE_NO_PAD.encode(secret);
        let hash = hash_secret(secret.clone()).await?;
        sqlx::query("INSERT INTO api_keys (id, tenant, role, name, secret_hash) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(tenant)
            .bind(role.as_str())
            .bind(name)
            .bind(&hash)
            .execute(&self.pool)
            .await
            .map_err(|source| KeyError::Query { doing: "storing the key", source })?;
        let key = format!("frk_{id}_{secret}");
        Ok(CreatedKey { id, key, tenant: tenant.into(), role, name: name.into() })
    }

    /// Revokes the key `id`: true when a live key was revoked.
    pub async fn revoke(&self, id: &str) -> Result<bool, KeyError> {
        let done = sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|source| KeyError::Query { doing: "revoking the key", source })?;
        Ok(done.rows_affected() == 1)
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
                let field = |name: &str| row.try_get::<String, _>(name);
                Ok(KeyInfo {
                    id: field("id")?,
                    tenant: field("tenant")?,
                    role: field("role")?,
                    name: field("name")?,
                    created_at: field("created")?,
                    revoked_at: row.try_get::<Option<String>, _>("revoked")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|source| KeyError::Query { doing: "reading the key list", source })
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
        let matches = tokio::task::spawn_blocking(move || {
            let parsed = PasswordHash::new(&hash).map_err(|error| KeyError::Hash(error.to_string()))?;
            Ok::<bool, KeyError>(Argon2::default().verify_password(secret.as_bytes(), &parsed).is_ok())
        })
        .await
        .map_err(|error| KeyError::Hash(format!("the verifying task failed: {error}")))??;
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
    /// Remembers up to `capacity` answers for `ttl` each: a revoked key stops working within
    /// `ttl`, and a wrong key costs one argon2 run per `ttl`, not one per request.
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
        self.cache
            .try_get_with(digest, self.store.verify(presented))
            .await
            .map_err(|error: Arc<KeyError>| KeyError::Hash(error.to_string()))
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

/// An argon2id PHC string of `secret`, computed off the async threads.
async fn hash_secret(secret: String) -> Result<String, KeyError> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0_u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(|error| KeyError::Hash(error.to_string()))?;
        Argon2::default()
            .hash_password(secret.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|error| KeyError::Hash(error.to_string()))
    })
    .await
    .map_err(|error| KeyError::Hash(format!("the hashing task failed: {error}")))?
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

fn check_schema(schema: &str) -> Result<(), KeyError> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(KeyError::InvalidInput { field: "schema", message: "must be 1-63 of a-z 0-9 _".into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WELL_FORMED: &str = "frk_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    #[test]
    fn a_well_formed_key_parses_into_id_and_secret() {
        assert_eq!(parse(WELL_FORMED), Some(("0123456789ab", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")));
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        for key in ["", "frk_", "frk_0123456789ab", "frk_XYZ456789abc_AAAA", "sk_0123456789ab_AAAA", &WELL_FORMED[..50]]
        {
            assert_eq!(parse(key), None, "{key}");
        }
    }

    #[test]
    fn roles_are_ordered_by_what_they_may_do() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
    }

    #[test]
    fn roles_parse_from_their_names_only() {
        assert_eq!("operator".parse::<Role>().unwrap(), Role::Operator);
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn a_tenant_with_spaces_is_refused() {
        assert!(check_tenant("acme corp").is_err());
        assert!(check_tenant("acme-corp").is_ok());
    }
}
