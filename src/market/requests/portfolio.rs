//! `portfolio.risk`: VaR/CVaR (historical and Monte-Carlo), volatility, Sharpe ratio and beta of
//! a fixed-weight portfolio over the stored closes its symbols share.

use serde_json::Value;

use super::params::Params;
use super::{AnalysisResult, DEFAULT_WINDOW_DAYS, RequestError, WINDOW_DAYS_RANGE, named_values, off_async_runtime};
use crate::analytics::risk::portfolio_daily_returns;
use crate::analytics::risk::{DEFAULT_MONTE_CARLO_PATHS, MAXIMUM_MONTE_CARLO_PATHS, MINIMUM_MONTE_CARLO_PATHS};
use crate::analytics::{PortfolioPosition, PriceSeries, RiskConfig, historical_tail_risk, portfolio_risk};
use crate::market::{AlignedCloses, PriceStore};

/// Confidence levels when the request names none; the report always carries these two.
pub const DEFAULT_CONFIDENCE_LEVELS: [f64; 2] = [0.95, 0.99];

/// Most positions one request may hold (the Monte-Carlo work grows with their square).
pub const MAXIMUM_POSITIONS: usize = 100;

/// One position: a symbol and its fraction of portfolio value.
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    /// The symbol.
    pub symbol: String,
    /// Fraction of value; negative for a short. All weights sum to 1.
    pub weight: f64,
}

/// `portfolio.risk` parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct PortfolioRiskRequest {
    /// The positions (`weights`: symbol to weight; `symbols`, if given, must list the same
    /// symbols), sorted by symbol so that the same portfolio always gives the same numbers.
    pub positions: Vec<Position>,
    /// Daily returns in the window (`window_days`, default 252).
    pub window_days: usize,
    /// Symbol to compute beta against (`benchmark`).
    pub benchmark: Option<String>,
    /// VaR/CVaR confidence levels (`confidence_levels`, default 0.95 and 0.99). 0.95 and 0.99
    /// are always reported, historical and Monte-Carlo; other levels add historical figures
    /// named `historical_var_<level>_daily` (0.975: `historical_var_97_5_daily`).
    pub confidence_levels: Vec<f64>,
    /// Monte-Carlo paths (`paths`, default 10,000).
    pub monte_carlo_paths: usize,
    /// Monte-Carlo seed (`seed`, default 0).
    pub seed: u64,
    /// Annual risk-free rate for the Sharpe ratio (`risk_free_rate`, default 0).
    pub risk_free_rate: f64,
}

impl PortfolioRiskRequest {
    /// The parameter names this kind takes.
    pub const PARAMS: &'static [&'static str] =
        &["symbols", "weights", "window_days", "benchmark", "confidence_levels", "paths", "seed", "risk_free_rate"];

    /// Reads and checks the parameters.
    pub fn parse(params: &Value) -> Result<Self, RequestError> {
        let params = Params::new(params, Self::PARAMS)?;
        let weights = params.number_map("weights")?.ok_or_else(|| RequestError::invalid("weights", "is required"))?;
        if weights.is_empty() {
            return Err(RequestError::invalid("weights", "must name at least one symbol"));
        }
        if weights.len() > MAXIMUM_POSITIONS {
            return Err(RequestError::invalid(
                "weights",
                format!("names {} symbols; at most {MAXIMUM_POSITIONS}", weights.len()),
            ));
        }
        let mut positions = Vec::with_capacity(weights.len());
        for (symbol, weight) in weights {
            crate::market::store::check_symbol(&symbol)
                .map_err(|reason| RequestError::invalid(format!("weights.{symbol}"), reason))?;
            positions.push(Position { symbol, weight });
        }
        positions.sort_by(|a, b| a.symbol.cmp(&b.symbol));
        let sum: f64 = positions.iter().map(|position| position.weight).sum();
        if (sum - 1.0).abs() > crate::analytics::risk::WEIGHT_SUM_TOLERANCE {
            return Err(RequestError::invalid("weights", format!("sum to {sum}; they must sum to 1")));
        }
        if let Some(symbols) = params.strings("symbols")? {
            let mut listed: Vec<&str> = symbols;
            listed.sort_unstable();
            let weighted: Vec<&str> = positions.iter().map(|position| position.symbol.as_str()).collect();
            if listed != weighted {
                return Err(RequestError::invalid("symbols", "must list exactly the symbols of `weights`"));
            }
        }
        let confidence_levels =
            params.numbers("confidence_levels")?.unwrap_or_else(|| DEFAULT_CONFIDENCE_LEVELS.to_vec());
        for (index, &level) in confidence_levels.iter().enumerate() {
            if !(level > 0.5 && level < 1.0) {
                return Err(RequestError::invalid(
                    format!("confidence_levels[{index}]"),
                    format!("is {level}; must lie strictly between 0.5 and 1"),
                ));
            }
        }
        let paths_range = MINIMUM_MONTE_CARLO_PATHS as u64..=MAXIMUM_MONTE_CARLO_PATHS as u64;
        Ok(Self {
            positions,
            window_days: params
                .integer("window_days", WINDOW_DAYS_RANGE)?
                .map_or(DEFAULT_WINDOW_DAYS, |days| days as usize),
            benchmark: params.symbol("benchmark")?,
            confidence_levels,
            monte_carlo_paths: params
                .integer("paths", paths_range)?
                .map_or(DEFAULT_MONTE_CARLO_PATHS, |paths| paths as usize),
            seed: params.integer("seed", 0..=u64::MAX)?.unwrap_or(0),
            risk_free_rate: params.number("risk_free_rate")?.unwrap_or(0.0),
        })
    }

    /// Every symbol the request reads: the positions, then the benchmark.
    pub fn symbols(&self) -> Vec<&str> {
        let mut symbols: Vec<&str> = self.positions.iter().map(|position| position.symbol.as_str()).collect();
        if let Some(benchmark) = &self.benchmark
            && !symbols.contains(&benchmark.as_str())
        {
            symbols.push(benchmark);
        }
        symbols
    }

    /// Loads the closes all symbols share over the window and computes the risk report.
    pub async fn compute(&self, store: &PriceStore) -> Result<AnalysisResult, RequestError> {
        let symbols = self.symbols();
        let known = store.existing_symbols(&symbols).await?;
        if let Some(unknown) = symbols.iter().find(|symbol| !known.iter().any(|known| known == *symbol)) {
            return Err(RequestError::UnknownSymbol { symbol: (*unknown).to_owned() });
        }
        let aligned = store.aligned_closes(&symbols, self.window_days.saturating_add(1)).await?;
        let request = self.clone();
        off_async_runtime(move || request.analyse(&aligned)).await
    }

    /// The risk report over already loaded closes (CPU-bound: the Monte-Carlo paths).
    fn analyse(&self, aligned: &AlignedCloses) -> Result<AnalysisResult, RequestError> {
        let positions: Vec<PortfolioPosition<'_>> = self
            .positions
            .iter()
            .map(|position| PortfolioPosition {
                symbol: &position.symbol,
                weight: position.weight,
                closes: aligned.closes_of(&position.symbol),
            })
            .collect();
        let benchmark = self.benchmark.as_deref().map(|symbol| PriceSeries::new(symbol, aligned.closes_of(symbol)));
        let config = RiskConfig {
            monte_carlo_paths: self.monte_carlo_paths,
            seed: self.seed,
            risk_free_rate_annual: self.risk_free_rate,
        };
        let report = portfolio_risk(&positions, benchmark, &config)?;
        let mut result = named_values(&report)?;
        let extra_levels: Vec<f64> = self
            .confidence_levels
            .iter()
            .copied()
            .filter(|level| !DEFAULT_CONFIDENCE_LEVELS.iter().any(|default| (default - level).abs() < 1e-12))
            .collect();
        if !extra_levels.is_empty() {
            let returns = portfolio_daily_returns(&positions)?;
            for level in extra_levels {
                let tail = historical_tail_risk(&returns, level)?;
                let label = level_label(level);
                for (name, value) in [("var", tail.var_daily), ("cvar", tail.cvar_daily)] {
                    if value.is_finite() {
                        result.insert(format!("historical_{name}_{label}_daily"), value);
                    }
                }
            }
        }
        Ok(result)
    }
}

/// A confidence level as it appears in a result name: 0.975 is `97_5`, 0.9 is `90`.
fn level_label(level: f64) -> String {
    let percent = format!("{:.4}", level * 100.0);
    let trimmed = percent.trim_end_matches('0').trim_end_matches('.');
    trimmed.replace('.', "_")
}

#[cfg(test)]
mod tests {
    use super::level_label;

    #[test]
    fn confidence_levels_label_result_names() {
        assert_eq!(level_label(0.975), "97_5");
        assert_eq!(level_label(0.9), "90");
        assert_eq!(level_label(0.999), "99_9");
    }
}
