//! Content negotiation of the precompressed variants (RFC 9110 §12.5.3): of the encodings the
//! client accepts with a non-zero quality, the smallest variant the build kept.

use std::collections::BTreeMap;

/// The encoding to send (`None`: identity), given the request's `Accept-Encoding` and the
/// variants the build kept (encoding -> bytes) beside the identity size.
pub fn choose(accept_encoding: Option<&str>, identity_size: u64, variants: &BTreeMap<String, u64>) -> Option<String> {
    let accepted = parse(accept_encoding?);
    let quality = |coding: &str| {
        accepted
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(coding))
            .or_else(|| accepted.iter().find(|(name, _)| name == "*"))
            .map_or(0.0, |(_, q)| *q)
    };
    variants
        .iter()
        .filter(|(coding, size)| **size < identity_size && quality(coding) > 0.0)
        // Smallest first; on a tie, the encoding's name keeps the choice stable.
        .min_by(|(a_name, a_size), (b_name, b_size)| a_size.cmp(b_size).then(a_name.cmp(b_name)))
        .map(|(coding, _)| coding.clone())
}

/// `gzip;q=0.8, br` as (coding, quality) pairs; a quality that does not parse counts as 0, so a
/// malformed header never selects an encoding the client did not ask for.
fn parse(header: &str) -> Vec<(String, f32)> {
    header
        .split(',')
        .filter_map(|item| {
            let mut parts = item.split(';');
            let coding = parts.next()?.trim().to_ascii_lowercase();
            if coding.is_empty() {
                return None;
            }
            let mut q = 1.0;
            for parameter in parts {
                if let Some((name, value)) = parameter.split_once('=')
                    && name.trim().eq_ignore_ascii_case("q")
                {
                    q = value.trim().parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q)).unwrap_or(0.0);
                }
            }
            Some((coding, q))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variants() -> BTreeMap<String, u64> {
        [("br".to_owned(), 300), ("zstd".to_owned(), 320), ("gzip".to_owned(), 360)].into_iter().collect()
    }

    #[test]
    fn the_smallest_accepted_variant_is_chosen() {
        assert_eq!(choose(Some("gzip, deflate, br, zstd"), 1000, &variants()).as_deref(), Some("br"));
        assert_eq!(choose(Some("gzip, zstd"), 1000, &variants()).as_deref(), Some("zstd"));
    }

    #[test]
    fn an_encoding_refused_with_q_zero_is_not_chosen() {
        assert_eq!(choose(Some("br;q=0, gzip"), 1000, &variants()).as_deref(), Some("gzip"));
    }

    #[test]
    fn no_header_or_identity_only_gets_identity() {
        assert_eq!(choose(None, 1000, &variants()), None);
        assert_eq!(choose(Some("identity"), 1000, &variants()), None);
    }

    #[test]
    fn a_wildcard_accepts_every_variant() {
        assert_eq!(choose(Some("*"), 1000, &variants()).as_deref(), Some("br"));
    }

    #[test]
    fn a_malformed_quality_refuses_that_encoding() {
        assert_eq!(choose(Some("br;q=high, gzip"), 1000, &variants()).as_deref(), Some("gzip"));
    }
}
