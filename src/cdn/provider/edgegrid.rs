//! Akamai EdgeGrid request signing (`EG1-HMAC-SHA256`), which every Akamai API client uses:
//! the adapter signs with it and the contract server verifies with it.
//!
//! The algorithm, as Akamai's reference client `akamai/AkamaiOPEN-edgegrid-python`
//! (`akamai/edgegrid/edgegrid.py`) implements it and its `test/testdata.json` pins it:
//!
//! - `timestamp` is UTC as `yyyyMMddTHH:mm:ss+0000`; `nonce` is a fresh random string (a UUID);
//! - the unsigned header is `EG1-HMAC-SHA256 client_token=…;access_token=…;timestamp=…;nonce=…;`;
//! - the signing key is `base64(HMAC-SHA256(key = client_secret, data = timestamp))`, used as
//!   text (its base64 bytes are the key of the next HMAC, not the decoded digest);
//! - the data to sign is, tab-separated: method, scheme, host (the `Host` header: with the port
//!   when it is not the default), path with `?query`, the canonical signed headers (none for Fast
//!   Purge), the content hash, and the unsigned header;
//! - the content hash is `base64(SHA-256(body))` for a `POST` with a body (the first `max_body`
//!   bytes of it; the clients' default is 131,072, above Fast Purge's 50,000-byte limit, so a
//!   purge's whole body is covered), empty otherwise;
//! - the header is the unsigned header followed by `signature=base64(HMAC-SHA256(key = signing
//!   key, data = data to sign))`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::Secret;

/// The scheme name that opens the `Authorization` header.
pub const ALGORITHM: &str = "EG1-HMAC-SHA256";

/// Bytes of a `POST` body the content hash covers: the default of Akamai's clients (Python,
/// Perl, Node), and what an API without a smaller `max_body` expects.
pub const MAX_BODY: usize = 131_072;

/// An API client's credentials, as Akamai Control Center's Identity and Access Management issues
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `client_token`: names the API client; sent in the header.
    pub client_token: String,
    /// `client_secret`: the shared secret; never sent.
    pub client_secret: Secret,
    /// `access_token`: names the authorization; sent in the header.
    pub access_token: String,
}

/// The parts of a request the signature covers.
#[derive(Debug, Clone, Copy)]
pub struct Signable<'a> {
    /// `POST`, `GET`, …
    pub method: &'a str,
    /// `https` (or `http` for a local contract server).
    pub scheme: &'a str,
    /// The `Host` header: host, and `:port` when the port is not the scheme's default.
    pub host: &'a str,
    /// Path and, when there is one, `?query`.
    pub path_and_query: &'a str,
    /// The body as sent.
    pub body: &'a [u8],
}

/// The `Authorization` header for `request`, signed at `timestamp` with `nonce`.
pub fn authorization(credentials: &Credentials, request: &Signable<'_>, timestamp: &str, nonce: &str) -> String {
    let unsigned = format!(
        "{ALGORITHM} client_token={};access_token={};timestamp={timestamp};nonce={nonce};",
        credentials.client_token, credentials.access_token
    );
    let signature = signature(credentials.client_secret.expose(), request, timestamp, &unsigned, MAX_BODY);
    format!("{unsigned}signature={signature}")
}

/// The signature of `request` under `client_secret`, for the header `unsigned` (everything before
/// `signature=`) and the content hash over the first `max_body` bytes.
pub fn signature(
    client_secret: &str,
    request: &Signable<'_>,
    timestamp: &str,
    unsigned: &str,
    max_body: usize,
) -> String {
    let signing_key = hmac_base64(client_secret.as_bytes(), timestamp.as_bytes());
    let data = [
        request.method,
        request.scheme,
        request.host,
        request.path_and_query,
        "",
        &content_hash(request.method, request.body, max_body),
        unsigned,
    ]
    .join("\t");
    hmac_base64(signing_key.as_bytes(), data.as_bytes())
}

/// `base64(SHA-256(body))` of a `POST`'s first `max_body` bytes; empty for other methods and
/// for an empty body.
pub fn content_hash(method: &str, body: &[u8], max_body: usize) -> String {
    if !method.eq_ignore_ascii_case("POST") || body.is_empty() {
        return String::new();
    }
    STANDARD.encode(Sha256::digest(&body[..body.len().min(max_body)]))
}

fn hmac_base64(key: &[u8], data: &[u8]) -> String {
    #[allow(clippy::expect_used)] // HMAC accepts keys of any length: `new_from_slice` cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The fields of a received EdgeGrid `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization<'a> {
    /// Everything before `signature=`: what the signature itself signs.
    pub unsigned: &'a str,
    /// `client_token=`.
    pub client_token: &'a str,
    /// `access_token=`.
    pub access_token: &'a str,
    /// `timestamp=`.
    pub timestamp: &'a str,
    /// `nonce=`.
    pub nonce: &'a str,
    /// `signature=`.
    pub signature: &'a str,
}

impl<'a> Authorization<'a> {
    /// Reads `header`; `None` unless it is an EdgeGrid header with every field.
    pub fn parse(header: &'a str) -> Option<Authorization<'a>> {
        let fields = header.strip_prefix(ALGORITHM)?.strip_prefix(' ')?;
        let cut = header.rfind("signature=")?;
        let (mut client_token, mut access_token, mut timestamp, mut nonce, mut signature) =
            (None, None, None, None, None);
        for field in fields.split(';').filter(|field| !field.is_empty()) {
            let (name, value) = field.split_once('=')?;
            let slot = match name {
                "client_token" => &mut client_token,
                "access_token" => &mut access_token,
                "timestamp" => &mut timestamp,
                "nonce" => &mut nonce,
                "signature" => &mut signature,
                _ => return None,
            };
            if slot.replace(value).is_some() {
                return None;
            }
        }
        Some(Authorization {
            unsigned: &header[..cut],
            client_token: client_token?,
            access_token: access_token?,
            timestamp: timestamp?,
            nonce: nonce?,
            signature: signature?,
        })
    }
}

/// Whether `signature` is the one `client_secret` gives `request` (compared in constant time, so
/// a forger learns nothing from how long a refusal takes).
pub fn verify(client_secret: &str, header: &Authorization<'_>, request: &Signable<'_>, max_body: usize) -> bool {
    let expected = signature(client_secret, request, header.timestamp, header.unsigned, max_body);
    let (a, b) = (expected.as_bytes(), header.signature.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `at` as EdgeGrid's `yyyyMMddTHH:mm:ss+0000`.
pub fn timestamp(at: SystemTime) -> String {
    let seconds = at.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rest) = ((seconds / 86_400) as i64, seconds % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}{month:02}{day:02}T{:02}:{:02}:{:02}+0000", rest / 3600, rest / 60 % 60, rest % 60)
}

/// Reads an EdgeGrid timestamp; `None` unless it has exactly that shape.
pub fn parse_timestamp(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() != 22 || b[8] != b'T' || b[11] != b':' || b[14] != b':' || &text[17..] != "+0000" {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        if part.bytes().all(|c| c.is_ascii_digit()) { part.parse().ok() } else { None }
    };
    let (year, month, day) = (number(0..4)?, number(4..6)?, number(6..8)?);
    let (hour, minute, second) = (number(9..11)?, number(12..14)?, number(15..17)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).ok()?))
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Day count since 1970-01-01 of a proleptic Gregorian date (Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    // The vectors of Akamai's reference client: akamai/AkamaiOPEN-edgegrid-python,
    // akamai/edgegrid/test/testdata.json (max_body 2048 there, no headers signed in these cases).
    const HOST: &str = "akaa-baseurl-xxxxxxxxxxx-xxxxxxxxxxxxx.luna.akamaiapis.net";
    const TIMESTAMP: &str = "20140321T19:34:21+0000";
    const NONCE: &str = "nonce-xx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";

    fn credentials() -> Credentials {
        Credentials {
            client_token: "akab-client-token-xxx-xxxxxxxxxxxxxxxx".into(),
            client_secret: Secret::new("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx="),
            access_token: "akab-access-token-xxx-xxxxxxxxxxxxxxxx".into(),
        }
    }

    fn signed(method: &str, path: &str, body: &[u8]) -> String {
        let request = Signable { method, scheme: "https", host: HOST, path_and_query: path, body };
        let unsigned = format!(
            "{ALGORITHM} client_token=akab-client-token-xxx-xxxxxxxxxxxxxxxx;access_token=akab-access-token-xxx-xxxxxxxxxxxxxxxx;timestamp={TIMESTAMP};nonce={NONCE};"
        );
        signature(credentials().client_secret.expose(), &request, TIMESTAMP, &unsigned, 2048)
    }

    #[test]
    fn the_signing_key_matches_akamais_vector() {
        assert_eq!(
            hmac_base64(b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx=", TIMESTAMP.as_bytes()),
            "znsRMDBRqTXGJ7Ojip3/h2FGPu3LuoMYWgv9PKEnE/o="
        );
    }

    #[test]
    fn signatures_match_akamais_reference_vectors() {
        assert_eq!(signed("GET", "/", b""), "tL+y4hxyHxgWVD30X3pWnGKHcPzmrIF+LThiAOhMxYU=");
        assert_eq!(signed("GET", "/testapi/v1/t1?p1=1&p2=2", b""), "hKDH1UlnQySSHjvIcZpDMbQHihTQ0XyVAKZaApabdeA=");
        assert_eq!(
            signed("POST", "/testapi/v1/t3", b"datadatadatadatadatadatadatadata"),
            "hXm4iCxtpN22m4cbZb4lVLW5rhX8Ca82vCFqXzSTPe4="
        );
        assert_eq!(signed("POST", "/testapi/v1/t6", b""), "1gEDxeQGD5GovIkJJGcBaKnZ+VaPtrc4qBUHixjsPCQ=");
    }

    #[test]
    fn a_body_longer_than_max_body_is_hashed_up_to_max_body() {
        let at_limit = signed("POST", "/testapi/v1/t3", "d".repeat(2048).as_bytes());
        assert_eq!(at_limit, "6Q6PiTipLae6n4GsSIDTCJ54bEbHUBp+4MUXrbQCBoY=");
        assert_eq!(signed("POST", "/testapi/v1/t3", "d".repeat(5000).as_bytes()), at_limit);
    }

    #[test]
    fn a_signed_header_parses_and_verifies_and_a_changed_body_does_not() {
        let request = Signable { method: "POST", scheme: "https", host: HOST, path_and_query: "/ccu/v3", body: b"{}" };
        let header = authorization(&credentials(), &request, TIMESTAMP, NONCE);
        let parsed = Authorization::parse(&header).unwrap();
        assert_eq!(parsed.nonce, NONCE);
        assert_eq!(parsed.client_token, "akab-client-token-xxx-xxxxxxxxxxxxxxxx");
        assert!(verify(credentials().client_secret.expose(), &parsed, &request, MAX_BODY));
        let tampered = Signable { body: b"{ }", ..request };
        assert!(!verify(credentials().client_secret.expose(), &parsed, &tampered, MAX_BODY));
        assert!(Authorization::parse("Bearer abc").is_none());
    }

    #[test]
    fn timestamps_round_trip_in_edgegrids_format() {
        let at = UNIX_EPOCH + Duration::from_secs(1_395_430_461);
        assert_eq!(timestamp(at), TIMESTAMP);
        assert_eq!(parse_timestamp(TIMESTAMP), Some(at));
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29T00:00:00Z
        assert_eq!(timestamp(leap), "20000229T00:00:00+0000");
        assert_eq!(parse_timestamp("20000229T00:00:00+0000"), Some(leap));
        assert_eq!(parse_timestamp("2014-03-21T19:34:21Z"), None);
    }
}
