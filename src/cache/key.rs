//! Cache keys: what changes an answer (kind, params, tenant, entitlements) in one canonical
//! form, hashed with SHA-256, so equal requests meet whatever their field order or number
//! spelling, and different tenants never do.

use std::fmt::{self, Write as _};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Version of the canonical form; bumping it moves every request to new keys.
const CANONICAL_VERSION: &str = "v1";

/// The key of one cached answer: `<kind>:<sha256 hex>`, the kind kept readable in Redis and
/// on disk. Safe in Redis keys and file names (only `[a-z0-9._-]`, `:` and hex).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(String);

impl CacheKey {
    /// The key of a request: its `kind`, its `params` (any JSON) and the user context that
    /// changes the answer (`tenant`, `entitlements` in any order, duplicates ignored).
    pub fn for_request(kind: &str, params: &Value, tenant: &str, entitlements: &[String]) -> CacheKey {
        let digest = Sha256::digest(canonical_request(kind, params, tenant, entitlements).as_bytes());
        CacheKey(format!("{}:{}", readable_kind(kind), hex::encode(digest)))
    }

    /// A key as it was printed (e.g. from an invalidation's `keys`); `None` if it is not one.
    pub fn parse(text: &str) -> Option<CacheKey> {
        let (kind, digest) = text.rsplit_once(':')?;
        let kind_ok = !kind.is_empty() && kind.len() <= 64 && kind.chars().all(is_readable_kind_char);
        let digest_ok = digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        (kind_ok && digest_ok).then(|| CacheKey(text.to_string()))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_readable_kind_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
}

/// The kind as a key prefix: lower-cased, other characters replaced, at most 64 characters
/// (the digest covers the exact kind, so this only has to be readable).
fn readable_kind(kind: &str) -> String {
    let readable: String = kind
        .chars()
        .take(64)
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if is_readable_kind_char(c) { c } else { '_' })
        .collect();
    if readable.is_empty() { "_".into() } else { readable }
}

/// The canonical text hashed into a key: a JSON array of version, kind, tenant, the sorted
/// distinct entitlements and the canonical params.
pub fn canonical_request(kind: &str, params: &Value, tenant: &str, entitlements: &[String]) -> String {
    let mut sorted: Vec<&str> = entitlements.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::with_capacity(128);
    out.push('[');
    write_string(&mut out, CANONICAL_VERSION);
    out.push(',');
    write_string(&mut out, kind);
    out.push(',');
    write_string(&mut out, tenant);
    out.push_str(",[");
    for (i, entitlement) in sorted.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(&mut out, entitlement);
    }
    out.push_str("],");
    write_canonical(&mut out, params);
    out.push(']');
    out
}

/// Canonical JSON: object keys sorted (by their UTF-8 bytes), no whitespace, arrays in order,
/// numbers in one spelling (see [`canonical_number`]).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(&mut out, value);
    out
}

fn write_canonical(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&canonical_number(n)),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_canonical(out, item);
            }
            out.push('}');
        }
    }
}

/// One spelling per numeric value: integers exactly; floats with an integral value below 2^63
/// as that integer (so `1`, `1.0` and `1e0` agree); other floats in Rust's shortest
/// round-trip form (`0.25`, `1e-7`). `-0.0` is `0`.
pub fn canonical_number(number: &serde_json::Number) -> String {
    if let Some(i) = number.as_i64() {
        return i.to_string();
    }
    if let Some(u) = number.as_u64() {
        return u.to_string();
    }
    let f = number.as_f64().unwrap_or(0.0);
    // 2^63 as f64 is exact; below it an integral f64 converts to i64 without loss.
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if f.fract() == 0.0 && f.abs() < TWO_POW_63 {
        return (f as i64).to_string();
    }
    let mut text = String::new();
    // Debug of f64 is the shortest text that parses back to the same value, switching to
    // exponent notation for very large or small magnitudes (1e300, not 301 digits).
    let _ = write!(text, "{f:?}");
    text
}

fn write_string(out: &mut String, text: &str) {
    // serde_json's escaping is deterministic; serializing a &str cannot fail.
    out.push_str(&serde_json::to_string(text).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key(params: Value, tenant: &str, entitlements: &[&str]) -> CacheKey {
        let entitlements: Vec<String> = entitlements.iter().map(|s| s.to_string()).collect();
        CacheKey::for_request("portfolio.risk", &params, tenant, &entitlements)
    }

    fn parsed(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn field_order_does_not_change_the_key() {
        let a = parsed(r#"{"symbols": ["AAPL", "MSFT"], "weights": {"AAPL": 0.6, "MSFT": 0.4}, "window_days": 30}"#);
        let b = parsed(r#"{"window_days": 30, "weights": {"MSFT": 0.4, "AAPL": 0.6}, "symbols": ["AAPL", "MSFT"]}"#);
        assert_eq!(key(a, "acme", &[]), key(b, "acme", &[]));
    }

    #[test]
    fn number_spellings_of_one_value_give_one_key() {
        let spellings = ["1", "1.0", "1e0", "1.00", "10e-1"];
        let keys: Vec<CacheKey> =
            spellings.iter().map(|n| key(parsed(&format!(r#"{{"window_days": {n}}}"#)), "acme", &[])).collect();
        assert!(keys.windows(2).all(|w| w[0] == w[1]), "{keys:?}");
        assert_eq!(canonical_json(&parsed("[-0.0, 0.25, 2.5e-3, 1e300]")), "[0,0.25,0.0025,1e300]");
        assert_ne!(key(json!({"x": 1}), "acme", &[]), key(json!({"x": 1.5}), "acme", &[]));
    }

    #[test]
    fn array_order_matters() {
        assert_ne!(
            key(json!({"symbols": ["AAPL", "MSFT"]}), "acme", &[]),
            key(json!({"symbols": ["MSFT", "AAPL"]}), "acme", &[])
        );
    }

    #[test]
    fn tenant_and_entitlements_change_the_key() {
        let params = json!({"symbol": "AAPL"});
        let base = key(params.clone(), "acme", &["nasdaq"]);
        assert_ne!(base, key(params.clone(), "globex", &["nasdaq"]));
        assert_ne!(base, key(params.clone(), "acme", &[]));
        assert_ne!(base, key(params.clone(), "acme", &["nasdaq", "nyse"]));
        assert_eq!(
            key(params.clone(), "acme", &["nyse", "nasdaq"]),
            key(params.clone(), "acme", &["nasdaq", "nyse", "nasdaq"])
        );
    }

    #[test]
    fn kind_changes_the_key_and_prefixes_it() {
        let params = json!({"symbol": "AAPL"});
        let a = CacheKey::for_request("market.volatility", &params, "acme", &[]);
        let b = CacheKey::for_request("portfolio.risk", &params, "acme", &[]);
        assert_ne!(a, b);
        assert!(a.as_str().starts_with("market.volatility:"));
        assert_eq!(CacheKey::parse(a.as_str()), Some(a.clone()));
        assert_eq!(CacheKey::parse("market.volatility:xyz"), None);
        assert!(CacheKey::for_request("Odd Kind/../x", &params, "acme", &[]).as_str().starts_with("odd_kind_.._x:"));
    }

    #[test]
    fn strings_cannot_be_confused_with_structure() {
        // A tenant containing the separator must not collide with another split.
        let a = CacheKey::for_request("k", &json!({}), "a\",\"b", &[]);
        let b = CacheKey::for_request("k\",\"a", &json!({}), "b", &[]);
        assert_ne!(a, b);
    }
}
