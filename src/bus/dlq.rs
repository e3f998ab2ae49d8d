//! Dead-letter records: the original key and value, untouched, plus headers saying where the
//! message came from and why it was refused, so it can be inspected and replayed.

/// Header names on every dead-letter record.
pub mod header {
    pub const SOURCE_TOPIC: &str = "frontier.source.topic";
    pub const SOURCE_PARTITION: &str = "frontier.source.partition";
    pub const SOURCE_OFFSET: &str = "frontier.source.offset";
    /// Short, stable reason label (`not_single_object`, `unknown_fingerprint`, `corrupt`, ...).
    pub const ERROR_KIND: &str = "frontier.error.kind";
    /// Human-readable reason.
    pub const ERROR_MESSAGE: &str = "frontier.error.message";
    pub const WORKER: &str = "frontier.worker";
    pub const GROUP: &str = "frontier.group";
    /// Milliseconds since the epoch when the message was dead-lettered.
    pub const FAILED_AT: &str = "frontier.failed.at";
    /// Present when the value is not the original whole: `truncated: kept the first N of M
    /// bytes`, or `omitted: ...`. The original is still at its source coordinates.
    pub const PAYLOAD: &str = "frontier.payload";
}

/// Where a dead-lettered message came from and why it failed.
pub struct Provenance<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub kind: &'a str,
    pub reason: &'a str,
    pub worker: &'a str,
    pub group: &'a str,
    pub failed_at_ms: i64,
}

/// The longest `frontier.error.message` kept: reasons may quote the input, which is not ours
/// to size.
pub const MAX_REASON_BYTES: usize = 4096;

/// The longest key a dead letter keeps (the original's key may be anything up to the limit).
pub const MAX_KEY_BYTES: usize = 4096;

/// `text` cut to at most `max` bytes on a character boundary, marked with `…` when cut.
pub fn truncated(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The headers of a dead-letter record; values are UTF-8 text.
pub fn headers(p: &Provenance<'_>) -> Vec<(String, Vec<u8>)> {
    [
        (header::SOURCE_TOPIC, p.topic.to_string()),
        (header::SOURCE_PARTITION, p.partition.to_string()),
        (header::SOURCE_OFFSET, p.offset.to_string()),
        (header::ERROR_KIND, p.kind.to_string()),
        (header::ERROR_MESSAGE, truncated(p.reason, MAX_REASON_BYTES)),
        (header::WORKER, p.worker.to_string()),
        (header::GROUP, p.group.to_string()),
        (header::FAILED_AT, p.failed_at_ms.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_bytes()))
    .collect()
}
