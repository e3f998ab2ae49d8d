//! The monitor's output: alert state changes (`schemas/alert.avsc`) and their fingerprints.

use std::collections::BTreeMap;

use crate::records::Alert;

/// Why an alert message is being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertChange {
    /// The alert started firing (after its `for` duration).
    Fired,
    /// It is still firing and `renotify_interval` has passed since the last message.
    Renotified,
    /// It stopped firing.
    Resolved,
}

/// One alert message to produce, and why. Produce `alert` to `frontier.alerts` with
/// [`AlertTransition::key`] as the message key.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertTransition {
    /// What changed.
    pub change: AlertChange,
    /// The message itself.
    pub alert: Alert,
}

impl AlertTransition {
    /// The Kafka message key: the fingerprint, so all messages of one alert share a partition.
    pub fn key(&self) -> &[u8] {
        self.alert.fingerprint.as_bytes()
    }
}

/// Stable id of an alert: 64-bit FNV-1a over the rule name and the labels sorted by key, as 16
/// lowercase hex digits.
///
/// FNV-1a is spelled out here rather than taken from `std::hash`: std's hashers are seeded at
/// random per process and their output is not guaranteed across Rust releases, while a
/// fingerprint must be equal in every process and every release (it keys the alerts topic and
/// [`crate::sla::AlertBook::restore`] matches on it). Each string is framed by its length so
/// `{"ab": "c"}` and `{"a": "bc"}` cannot collide by concatenation.
pub fn fingerprint(name: &str, labels: &BTreeMap<String, String>) -> String {
    let mut hash = Fnv1a::new();
    hash.write_framed(name.as_bytes());
    // BTreeMap iterates in key order: the labels are hashed sorted without another sort.
    for (key, value) in labels {
        hash.write_framed(key.as_bytes());
        hash.write_framed(value.as_bytes());
    }
    format!("{:016x}", hash.0)
}

/// 64-bit FNV-1a (Fowler–Noll–Vo), http://www.isthe.com/chongo/tech/comp/fnv/.
struct Fnv1a(u64);

impl Fnv1a {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Self {
        Fnv1a(Self::OFFSET_BASIS)
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(Self::PRIME);
        }
    }

    fn write_framed(&mut self, bytes: &[u8]) {
        self.write(&(bytes.len() as u64).to_le_bytes());
        self.write(bytes);
    }
}

#[cfg(test)]
mod fnv_tests {
    use super::Fnv1a;

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        for (input, expected) in
            [("", 0xcbf2_9ce4_8422_2325_u64), ("a", 0xaf63_dc4c_8601_ec8c), ("foobar", 0x8594_4171_f739_67e8)]
        {
            let mut hash = Fnv1a::new();
            hash.write(input.as_bytes());
            assert_eq!(hash.0, expected, "FNV-1a 64 of {input:?}");
        }
    }
}
