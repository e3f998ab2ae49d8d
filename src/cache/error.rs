//! Errors of the request cache. Layer failures never reach a request (they are counted and
//! logged where they happen); only a failed computation and a cache that cannot start do.

use super::disk::DiskLayerError;
use super::keyring::KeyringError;
use crate::config::InvalidSetting;

/// Why a value could not be computed; shared by every request coalesced onto the computation.
/// `code` is a stable lower_snake_case code for the response's `ErrorDetail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ComputeError {
    /// Stable machine-readable code, e.g. `invalid_params`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// What kind of failure it is, which decides how the request is answered.
    pub kind: FailureKind,
}

/// How a failed computation is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The same input always fails the same way: answer with the error.
    Permanent,
    /// It may succeed later (a store outage): retry the request rather than answer.
    Transient,
    /// The request's deadline passed before it could run: answer `timeout`.
    TimedOut,
    /// A background refresh gave way to live requests: nothing failed, the entry stays.
    Yielded,
}

impl ComputeError {
    /// An error the same input will always meet again.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> ComputeError {
        ComputeError { code: code.into(), message: message.into(), kind: FailureKind::Permanent }
    }

    /// An error that may go away: retry later.
    pub fn transient(code: impl Into<String>, message: impl Into<String>) -> ComputeError {
        ComputeError { code: code.into(), message: message.into(), kind: FailureKind::Transient }
    }

    /// The request ran out of time before it could be computed.
    pub fn timed_out(code: impl Into<String>, message: impl Into<String>) -> ComputeError {
        ComputeError { code: code.into(), message: message.into(), kind: FailureKind::TimedOut }
    }

    /// A background refresh that gave way to live requests.
    pub fn yielded(message: impl Into<String>) -> ComputeError {
        ComputeError { code: "yielded".into(), message: message.into(), kind: FailureKind::Yielded }
    }
}

/// Why the cache could not start.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(transparent)]
    Settings(#[from] InvalidSetting),
    #[error("cache encryption keys: {0}")]
    Keyring(#[from] KeyringError),
    #[error("invalid Redis URL for the cache: {0}")]
    RedisUrl(#[from] redis::RedisError),
    #[error(transparent)]
    Disk(#[from] DiskLayerError),
}
