//! Why a request could not be answered, with the stable codes of a response's `error.code`.

use crate::analytics::AnalyticsError;
use crate::market::StoreError;

/// Why a request was refused or could not be computed. [`RequestError::code`] is the stable
/// machine-readable code; the `Display` text is the readable message.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The kind is none of [`super::KNOWN_KINDS`].
    #[error("unknown kind `{kind}`; known kinds are market.volatility, portfolio.risk and option.price")]
    UnknownKind {
        /// The kind as given.
        kind: String,
    },
    /// A parameter is missing, of the wrong type, out of range, or not expected by the kind.
    #[error("invalid params: `{field}` {reason}")]
    InvalidParams {
        /// The parameter's name (`weights.AAPL` for an entry of a map).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No prices are stored for a symbol the request names.
    #[error("unknown symbol `{symbol}`: no prices are stored for it")]
    UnknownSymbol {
        /// The symbol.
        symbol: String,
    },
    /// Prices exist, but too few (or too few common days) to compute the statistic.
    #[error("insufficient history: {0}")]
    InsufficientHistory(AnalyticsError),
    /// The analytics refused the stored data (e.g. a benchmark whose returns do not vary).
    #[error("analysis failed: {0}")]
    AnalysisFailed(AnalyticsError),
    /// A bug: the computation panicked or was cancelled.
    #[error("internal error: {reason}")]
    Internal {
        /// What happened.
        reason: String,
    },
    /// PostgreSQL failed or is unreachable; retrying later may succeed.
    #[error("price store unavailable: {0}")]
    StoreUnavailable(#[from] StoreError),
}

impl RequestError {
    /// The stable code for a response's `error.code`.
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::UnknownKind { .. } => "unknown_kind",
            RequestError::InvalidParams { .. } => "invalid_params",
            RequestError::UnknownSymbol { .. } => "unknown_symbol",
            RequestError::InsufficientHistory(_) => "insufficient_history",
            RequestError::AnalysisFailed(_) => "analysis_failed",
            RequestError::Internal { .. } => "internal_error",
            RequestError::StoreUnavailable(_) => "store_unavailable",
        }
    }

    /// Whether the same request may succeed later (only store failures): a serving worker
    /// retries these and answers the others at once.
    pub fn is_transient(&self) -> bool {
        matches!(self, RequestError::StoreUnavailable(_))
    }

    /// An `invalid_params` error for `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        RequestError::InvalidParams { field: field.into(), reason: reason.into() }
    }
}

impl From<AnalyticsError> for RequestError {
    fn from(error: AnalyticsError) -> Self {
        match error {
            AnalyticsError::TooFewPrices { .. } | AnalyticsError::MisalignedHistory { .. } => {
                RequestError::InsufficientHistory(error)
            }
            AnalyticsError::InvalidParameter { name, .. } => RequestError::invalid(name, error.to_string()),
            AnalyticsError::InvalidTreeSteps { .. } | AnalyticsError::TreeProbabilityOutOfRange { .. } => {
                RequestError::invalid("steps", error.to_string())
            }
            AnalyticsError::MonteCarloPathsOutOfRange { .. } => RequestError::invalid("paths", error.to_string()),
            AnalyticsError::EmptyPortfolio
            | AnalyticsError::NonFiniteWeight { .. }
            | AnalyticsError::WeightsDoNotSumToOne { .. } => RequestError::invalid("weights", error.to_string()),
            other => RequestError::AnalysisFailed(other),
        }
    }
}
