//! Enums that several records share: each schema declares its own copy of the symbols, and one
//! Rust type reads and writes them all.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How urgently something should be served, most urgent first: the `Priority` enum of
/// `request.avsc` and `inference_job.avsc`. Unknown future symbols resolve to `normal`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Runs before everything else.
    Critical,
    /// Runs before normal and low.
    High,
    /// The default.
    #[default]
    Normal,
    /// Runs when nothing more urgent waits (or once aging lifts it).
    Low,
}

impl Priority {
    /// Every priority, most urgent first.
    pub const ALL: [Priority; 4] = [Priority::Critical, Priority::High, Priority::Normal, Priority::Low];

    /// 0 for critical up to 3 for low: a queue index, and the level aging lowers.
    pub fn level(self) -> usize {
        self as usize
    }

    /// The priority of a level; anything past low is low.
    pub fn from_level(level: usize) -> Priority {
        Priority::ALL[level.min(Priority::ALL.len() - 1)]
    }

    /// The next less urgent priority (low stays low).
    pub fn demoted(self) -> Priority {
        Priority::from_level(self.level() + 1)
    }

    /// The symbol, also a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }
}

/// Outcome of a request: the `ResponseStatus` enum of `response.avsc` and the `RequestStatus`
/// enum of `request_completed.avsc`. Unknown future symbols resolve to `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestStatus {
    /// Answered successfully.
    Ok,
    /// Failed; counts against the error rate and availability.
    Error,
    /// The deadline passed before an answer; counts against the timeout rate and availability.
    Timeout,
}

impl RequestStatus {
    /// The symbol, also a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Ok => "ok",
            RequestStatus::Error => "error",
            RequestStatus::Timeout => "timeout",
        }
    }
}

/// The cache layer that answered a request: the `CacheLayer` enum of `response.avsc` and
/// `request_completed.avsc`, and the layer the tiered cache reports. Unknown future symbols
/// resolve to `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheLayer {
    /// This process's memory.
    Memory,
    /// The shared Redis.
    Redis,
    /// This instance's disk folder.
    Disk,
    /// Computed for this request (or for the identical request it was coalesced with), or the
    /// service has no cache.
    None,
}

impl CacheLayer {
    /// The symbol, also a metric label: `memory`, `redis`, `disk` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheLayer::Memory => "memory",
            CacheLayer::Redis => "redis",
            CacheLayer::Disk => "disk",
            CacheLayer::None => "none",
        }
    }

    /// Whether the answer came from any cache layer.
    pub fn is_hit(self) -> bool {
        self != CacheLayer::None
    }
}

impl fmt::Display for CacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
