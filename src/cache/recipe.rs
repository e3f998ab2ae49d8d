//! Recipes: what the cache warmer needs to recompute a key it only knows from a
//! request-completed event (which carries no params). The serving worker stores the recipe of
//! every key it computes as an entry of the tiered cache itself, under a derived key, so it is
//! sealed (AES-256-GCM) in Redis and on disk like every cached value, shared by every instance,
//! and dropped by its own lifetime.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::cache::{CacheKey, CachePolicy, ComputeError, TieredCache};
use crate::market::{Analysis, PriceStore, RequestError};

/// The kind of recipe keys (`frontier.recipe:<sha256>`): no analysis kind starts like this.
pub const RECIPE_KIND: &str = "frontier.recipe";

/// How to recompute one cache key: everything [`CacheKey::for_request`] takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    /// Analysis kind.
    pub kind: String,
    /// Parameters as the request gave them.
    pub params: Value,
    /// Tenant.
    pub tenant: String,
    /// Entitlements.
    pub entitlements: Vec<String>,
}

impl Recipe {
    /// The cache key this recipe computes.
    pub fn key(&self) -> CacheKey {
        CacheKey::for_request(&self.kind, &self.params, &self.tenant, &self.entitlements)
    }
}

/// The computation the cache runs for `analysis` on a miss (or a refresh): the analytic over
/// `store`, stored bit for bit ([`super::result`]). Its error keeps the request's code for
/// every coalesced waiter, and says whether it may go away (the price store being down).
#[allow(
    clippy::manual_async_fn,
    reason = "the Send + 'static bound is what the cache needs; an async fn would not state it"
)]
pub fn computation(
    analysis: Analysis,
    store: PriceStore,
) -> impl Future<Output = Result<Vec<u8>, ComputeError>> + Send + 'static {
    async move {
        let result = analysis.compute(&store).await.map_err(|e: RequestError| {
            if e.is_transient() {
                ComputeError::transient(e.code(), e.to_string())
            } else {
                ComputeError::new(e.code(), e.to_string())
            }
        })?;
        super::result::encode(&result).map_err(|e| ComputeError::new(super::result::CORRUPT_RESULT, e.to_string()))
    }
}

/// The key under which the recipe of `key` is stored.
pub fn recipe_key(key: &CacheKey) -> CacheKey {
    CacheKey::for_request(RECIPE_KIND, &json!({ "key": key.as_str() }), "", &[])
}

/// Why a recipe could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// No layer holds it (expired, or the key was never computed by a serving instance).
    #[error("no recipe is stored for {0}")]
    Missing(CacheKey),
    /// It does not parse, or it computes another key (a bug or a hash collision).
    #[error("the recipe stored for {key} is unusable: {reason}")]
    Unusable {
        /// The key whose recipe it is.
        key: CacheKey,
        /// What is wrong with it.
        reason: String,
    },
}

/// Code of the computation error that stands for "no recipe" in a lookup.
const MISSING_CODE: &str = "recipe_missing";

/// Stores `recipe` for `key` unless a layer already holds it (written through to Redis, where
/// the warmer reads it). Failures are the cache's to count; a missing recipe only means the key
/// is not warmed.
pub async fn remember(cache: &TieredCache, key: &CacheKey, recipe: &Recipe, policy: CachePolicy) {
    let bytes = match serde_json::to_vec(recipe) {
        Ok(bytes) => bytes,
        // A JSON value and strings always serialize.
        Err(_) => return,
    };
    let _ = cache.get_or_compute(&recipe_key(key), &[], policy, async move { Ok(bytes) }).await;
}

/// Stores `recipe` for `key` again, restarting its lifetime (the warmer does this for keys that
/// stay hot).
pub async fn renew(
    cache: &TieredCache,
    key: &CacheKey,
    recipe: &Recipe,
    policy: CachePolicy,
) -> Result<(), ComputeError> {
    let bytes = serde_json::to_vec(recipe).map_err(|e| ComputeError::new("internal_error", e.to_string()))?;
    cache.refresh(&recipe_key(key), &[], policy, async move { Ok(bytes) }).await
}

/// The recipe stored for `key`, and its age.
pub async fn load(
    cache: &TieredCache,
    key: &CacheKey,
    policy: CachePolicy,
) -> Result<(Recipe, std::time::Duration), RecipeError> {
    let missing = async { Err(ComputeError::new(MISSING_CODE, "no recipe stored")) };
    let cached = match cache.get_or_compute(&recipe_key(key), &[], policy, missing).await {
        Ok(cached) => cached,
        Err(_) => return Err(RecipeError::Missing(key.clone())),
    };
    let recipe: Recipe = serde_json::from_slice(&cached.value)
        .map_err(|e| RecipeError::Unusable { key: key.clone(), reason: e.to_string() })?;
    if recipe.key() != *key {
        return Err(RecipeError::Unusable { key: key.clone(), reason: format!("it computes {}", recipe.key()) });
    }
    Ok((recipe, cached.age.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recipe_computes_its_key_and_recipe_keys_are_their_own_kind() {
        let recipe = Recipe {
            kind: "market.volatility".into(),
            params: json!({"symbol": "AAPL", "window_days": 30}),
            tenant: "acme".into(),
            entitlements: vec!["nyse".into()],
        };
        let key = CacheKey::for_request(
            "market.volatility",
            &json!({"window_days": 30.0, "symbol": "AAPL"}),
            "acme",
            &["nyse".into()],
        );
        assert_eq!(recipe.key(), key);
        let derived = recipe_key(&key);
        assert!(derived.as_str().starts_with("frontier.recipe:"), "{derived}");
        assert_ne!(derived, recipe_key(&CacheKey::for_request("market.volatility", &json!({}), "acme", &[])));
        let text = serde_json::to_vec(&recipe).unwrap();
        assert_eq!(serde_json::from_slice::<Recipe>(&text).unwrap(), recipe);
    }
}
