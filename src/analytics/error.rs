//! The one error type of the analytics core: every variant says which input was wrong and why.

/// Why an analytics computation refused its inputs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnalyticsError {
    /// A price history is too short to give the returns the statistic needs.
    #[error(
        "{symbol}: {prices} prices give {returns} returns, but at least {minimum_returns} are needed",
        returns = prices.saturating_sub(1)
    )]
    TooFewPrices {
        /// The symbol whose history is too short.
        symbol: String,
        /// How many prices it has.
        prices: usize,
        /// How many returns the computation needs.
        minimum_returns: usize,
    },

    /// A price is NaN or infinite.
    #[error("{symbol}: price at index {index} is {price}; prices must be finite numbers")]
    NonFinitePrice {
        /// The symbol whose history holds the price.
        symbol: String,
        /// Position of the price in the history (0 = oldest).
        index: usize,
        /// The offending value.
        price: f64,
    },

    /// A price is zero or negative, so no (log) return can be taken from it.
    #[error("{symbol}: price at index {index} is {price}; prices must be positive")]
    NonPositivePrice {
        /// The symbol whose history holds the price.
        symbol: String,
        /// Position of the price in the history (0 = oldest).
        index: usize,
        /// The offending value.
        price: f64,
    },

    /// A portfolio request named no positions.
    #[error("the portfolio has no positions")]
    EmptyPortfolio,

    /// A portfolio weight is NaN or infinite.
    #[error("{symbol}: weight {weight} is not a finite number")]
    NonFiniteWeight {
        /// The position with the bad weight.
        symbol: String,
        /// The offending weight.
        weight: f64,
    },

    /// Portfolio weights do not add up to one (fully invested).
    #[error("portfolio weights sum to {sum}, but must sum to 1 within {tolerance}")]
    WeightsDoNotSumToOne {
        /// The sum of the weights as given.
        sum: f64,
        /// The accepted distance from 1.
        tolerance: f64,
    },

    /// Two histories that must be aligned day by day have different lengths.
    #[error("{symbol}: {actual} prices, but {reference_symbol} has {expected}; histories must cover the same days")]
    MisalignedHistory {
        /// The history whose length differs.
        symbol: String,
        /// Its number of prices.
        actual: usize,
        /// The history it was compared with (the portfolio's first position).
        reference_symbol: String,
        /// That history's number of prices.
        expected: usize,
    },

    /// The benchmark's returns do not vary, so beta (cov / var) is undefined.
    #[error("benchmark {symbol}: its returns have zero variance, so beta is undefined")]
    DegenerateBenchmark {
        /// The benchmark's symbol.
        symbol: String,
    },

    /// The covariance matrix fitted to the asset returns is not positive semi-definite, so no
    /// multivariate normal has it (only possible through severe rounding).
    #[error("covariance of asset returns is not positive semi-definite: pivot {pivot} at {symbol}")]
    CovarianceNotPositiveSemiDefinite {
        /// The asset whose Cholesky pivot went negative.
        symbol: String,
        /// The negative pivot.
        pivot: f64,
    },

    /// The Monte-Carlo path count is outside the accepted range.
    #[error("Monte-Carlo paths = {paths}: must be between {minimum} (one path in the 99% tail) and {maximum}")]
    MonteCarloPathsOutOfRange {
        /// The paths asked for.
        paths: usize,
        /// The fewest paths accepted.
        minimum: usize,
        /// The most paths accepted (memory and time grow with it).
        maximum: usize,
    },

    /// A numeric parameter is outside its domain (option inputs, rates, confidence levels,
    /// synthetic-price settings).
    #[error("{name} = {value}: {requirement}")]
    InvalidParameter {
        /// The parameter's name, as in the request.
        name: &'static str,
        /// The value given.
        value: f64,
        /// What the value must satisfy.
        requirement: &'static str,
    },

    /// The binomial tree's step count is outside the accepted range.
    #[error("binomial tree steps = {steps}: must be between {minimum} and {maximum}")]
    InvalidTreeSteps {
        /// The steps asked for.
        steps: usize,
        /// The fewest steps accepted (delta and gamma need two levels).
        minimum: usize,
        /// The most steps accepted (work grows with its square).
        maximum: usize,
    },

    /// The tree's risk-neutral up-probability falls outside (0, 1): the steps are too coarse for
    /// the carry (r - q) against the volatility.
    #[error("binomial tree with {steps} steps has up-probability {probability}, outside (0, 1); use more steps")]
    TreeProbabilityOutOfRange {
        /// The steps asked for.
        steps: usize,
        /// The risk-neutral up-probability they give.
        probability: f64,
    },
}
