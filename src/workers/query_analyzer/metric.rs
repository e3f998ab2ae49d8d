//! Metric names of the query analyzer.

/// Seconds a statement took, one observation per query event (histogram): the database's
/// query times on the dashboard.
pub const STATEMENT_SECONDS: &str = "frontier_queries_statement_duration_seconds";
/// Query events counted into the windows, per `parsed` (true, false).
pub const EVENTS: &str = "frontier_queries_events_total";
/// Query events whose window had already been judged.
pub const LATE_EVENTS: &str = "frontier_queries_late_events_total";
/// Findings published, per `kind` (slow, heavy, regressed).
pub const FINDINGS: &str = "frontier_queries_findings_total";
/// Advice runs, per `outcome` (advised, failed).
pub const ADVICE_RUNS: &str = "frontier_queries_advice_runs_total";
/// Seconds per advice run (workload read, planning, choice).
pub const ADVICE_SECONDS: &str = "frontier_queries_advice_duration_seconds";
/// Recommendations published, per `action` (create, drop).
pub const RECOMMENDATIONS: &str = "frontier_queries_recommendations_total";

/// Applied indexes judged, per `verdict` (paid_off, did_not_pay_off).
pub const PAYOFF_VERDICTS: &str = "frontier_queries_payoff_verdicts_total";
/// Failed reads and writes of the recommendations table.
pub const STORE_ERRORS: &str = "frontier_queries_store_errors_total";

/// Registers descriptions so `/metrics` explains itself.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_histogram};
    describe_histogram!(STATEMENT_SECONDS, Unit::Seconds, "Seconds per statement run, from the query events.");
    describe_counter!(EVENTS, "Query events counted by the query analyzer, by whether their SQL parsed.");
    describe_counter!(LATE_EVENTS, "Query events that arrived after their window was judged.");
    describe_counter!(FINDINGS, "Slow, heavy and regressed statement windows found, by kind.");
    describe_counter!(ADVICE_RUNS, "Index advice runs, by outcome.");
    describe_histogram!(ADVICE_SECONDS, Unit::Seconds, "Seconds per index advice run.");
    describe_counter!(RECOMMENDATIONS, "Index recommendations published, by action.");
    describe_counter!(PAYOFF_VERDICTS, "Applied indexes judged on their statements' measured time, by verdict.");
    describe_counter!(STORE_ERRORS, "Failed reads and writes of the index recommendations table.");
}
