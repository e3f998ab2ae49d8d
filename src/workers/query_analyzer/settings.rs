//! `[workers.query_analyzer]`: where query events come from and findings and advice go, the
//! windows and rules that call a statement slow, and the database the advice is for.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{InvalidSetting, topic_named};
use crate::queries::{AdvisorSettings, SlowRules};
use crate::workers::WorkerConfig;

/// `[workers.query_analyzer]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryAnalyzerSettings {
    /// Topic of `QueryEvent`s.
    pub input_topic: String,
    /// Consumer group id; defaults to `<group_prefix>.query-analyzer`.
    pub group_id: Option<String>,
    /// Topic the findings (slow, heavy, regressed statements per window) go to.
    pub findings_topic: String,
    /// Compacted topic the index advice goes to, keyed by advice id.
    pub recommendations_topic: String,
    /// Length of an event-time window.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// How long after its end a window waits for late events before it is judged.
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// How often closed windows are judged.
    #[serde(with = "humantime_serde")]
    pub evaluate_interval: Duration,
    /// When a window of a statement is a finding.
    pub rules: SlowRules,
    /// The database index advice is for (`postgres://...`); the `[postgres] url` when unset.
    /// Events of other databases are judged but get no advice.
    pub database_url: Option<String>,
    /// How often index advice is worked out; 0 turns advice off.
    #[serde(with = "humantime_serde")]
    pub advise_interval: Duration,
    /// Advise on the database's `pg_stat_statements` too (every statement of every
    /// application, not only those that publish events); statements seen only in events are
    /// added to it. Without the extension the analyzer says so once and uses the events.
    pub use_stat_statements: bool,
    /// How the advisor chooses.
    pub advisor: AdvisorSettings,
    /// An index is advised away as unused only after this analyzer saw its scan count stay
    /// put for this long (a new index has no scans either, and statistics may be young).
    #[serde(with = "humantime_serde")]
    pub unused_index_window: Duration,
    /// Frontier's own database, where the recommendations table lives (never the advised
    /// one, which may belong to another team); the `[postgres] url` when unset.
    pub store_url: Option<String>,
    /// An applied index paid off when its statements' mean time in the first window judged
    /// after it was applied is at least this share below the mean when it was advised; one
    /// that did not is advised for dropping.
    pub payoff_min_gain: f64,
    /// Statement shapes remembered from events for advice, at most (the lightest go first).
    pub max_shapes: usize,
}

impl Default for QueryAnalyzerSettings {
    fn default() -> Self {
        QueryAnalyzerSettings {
            input_topic: "frontier.db.query-events".into(),
            group_id: None,
            findings_topic: "frontier.db.slow-queries".into(),
            recommendations_topic: "frontier.db.index-recommendations".into(),
            window: Duration::from_secs(60),
            allowed_lateness: Duration::from_secs(10),
            evaluate_interval: Duration::from_secs(5),
            rules: SlowRules::default(),
            database_url: None,
            advise_interval: Duration::from_secs(60),
            use_stat_statements: true,
            advisor: AdvisorSettings::default(),
            unused_index_window: Duration::from_secs(7 * 24 * 3600),
            store_url: None,
            payoff_min_gain: 0.2,
            max_shapes: 10_000,
        }
    }
}

impl WorkerConfig for QueryAnalyzerSettings {
    const SECTION: &'static str = "query_analyzer";
    const NAME: &'static str = "query-analyzer";

    fn group_id(&self) -> Option<&str> {
        self.group_id.as_deref()
    }

    fn input_topics(&self) -> Vec<String> {
        vec![self.input_topic.clone()]
    }

    fn validate(&self) -> Result<(), InvalidSetting> {
        let invalid = |key: &str, message: &str| Err(InvalidSetting::new(key, message));
        topic_named("input_topic", &self.input_topic)?;
        topic_named("findings_topic", &self.findings_topic)?;
        topic_named("recommendations_topic", &self.recommendations_topic)?;
        if self.window.is_zero() || self.evaluate_interval.is_zero() {
            return invalid(
                if self.window.is_zero() { "window" } else { "evaluate_interval" },
                "must be greater than zero",
            );
        }
        let rules = &self.rules;
        let fraction = |value: f64| value.is_finite() && (0.0..=1.0).contains(&value);
        if !(rules.min_mean_ms.is_finite() && rules.min_mean_ms >= 0.0) {
            return invalid("rules.min_mean_ms", "must be a non-negative number of milliseconds");
        }
        if !fraction(rules.min_time_share) || !fraction(rules.baseline_weight) {
            let key = if fraction(rules.min_time_share) { "rules.baseline_weight" } else { "rules.min_time_share" };
            return invalid(key, "must be a fraction between 0 and 1");
        }
        if !(rules.regression_factor.is_finite() && rules.regression_factor > 1.0) {
            return invalid("rules.regression_factor", "must be a number above 1");
        }
        if !(self.payoff_min_gain.is_finite() && self.payoff_min_gain > 0.0 && self.payoff_min_gain < 1.0) {
            return invalid("payoff_min_gain", "must be a fraction between 0 and 1 (exclusive)");
        }
        let advisor = &self.advisor;
        if !fraction(advisor.min_cost_reduction)
            || !fraction(advisor.write_overhead_floor)
            || !fraction(advisor.hot_update_share)
        {
            return invalid(
                "advisor",
                "min_cost_reduction, write_overhead_floor and hot_update_share are fractions between 0 and 1",
            );
        }
        if advisor.max_index_columns == 0 || self.max_shapes == 0 {
            let key = if self.max_shapes == 0 { "max_shapes" } else { "advisor.max_index_columns" };
            return invalid(key, "must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        assert!(QueryAnalyzerSettings::default().validate().is_ok());
    }

    #[test]
    fn a_regression_factor_of_one_is_refused() {
        let mut settings = QueryAnalyzerSettings::default();
        settings.rules.regression_factor = 1.0;
        assert_eq!(settings.validate().unwrap_err().key, "rules.regression_factor");
    }
}
