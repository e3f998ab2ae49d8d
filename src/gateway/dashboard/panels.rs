//! The dashboard's panels, written once: the gateway's live page evaluates these queries
//! against Prometheus, and `frontier dashboard grafana` renders the same list as Grafana panels,
//! so both show the same numbers.

use serde::Serialize;

/// How a panel's values read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Durations in seconds.
    Seconds,
    /// Fractions, shown as percentages.
    Ratio,
    /// Plain counts.
    Count,
    /// Events per second.
    PerSecond,
    /// Kafka messages (lag).
    Messages,
    /// Running processes.
    Instances,
}

/// How a panel draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PanelKind {
    /// Lines over time.
    Timeseries,
    /// The latest value of each series, as a number.
    Stat,
}

/// One PromQL instant query of a panel; every series of its answer becomes a line.
#[derive(Debug, Clone, Copy)]
pub struct Query {
    /// The expression (Prometheus evaluates it at the sample's time).
    pub expr: &'static str,
    /// The series' name, Grafana's legend format: `{{label}}` is replaced by the label's value.
    pub legend: &'static str,
}

/// One chart.
#[derive(Debug, Clone, Copy)]
pub struct Panel {
    /// Stable id: the page's element and the sample's key.
    pub id: &'static str,
    /// The card's title.
    pub title: &'static str,
    /// How values read.
    pub unit: Unit,
    /// How it draws.
    pub kind: PanelKind,
    /// Its queries.
    pub queries: &'static [Query],
}

/// A titled group of panels.
#[derive(Debug, Clone, Copy)]
pub struct Section {
    /// The heading.
    pub title: &'static str,
    /// Its panels, in order.
    pub panels: &'static [Panel],
}

/// p50, p95 and p99 of a histogram summed by `by` (", label", or "" for one line each), over one minute of rate.
macro_rules! quantiles {
    ($metric:literal, $by:literal, $legend:literal) => {
        &[
            Query {
                expr: concat!("histogram_quantile(0.5, sum by (le", $by, ") (rate(", $metric, "_bucket[1m])))"),
                legend: concat!("p50 ", $legend),
            },
            Query {
                expr: concat!("histogram_quantile(0.95, sum by (le", $by, ") (rate(", $metric, "_bucket[1m])))"),
                legend: concat!("p95 ", $legend),
            },
            Query {
                expr: concat!("histogram_quantile(0.99, sum by (le", $by, ") (rate(", $metric, "_bucket[1m])))"),
                legend: concat!("p99 ", $legend),
            },
        ]
    };
}

/// Every panel, by section, in page order.
pub const SECTIONS: &[Section] = &[
    Section {
        title: "Latency",
        panels: &[
            Panel {
                id: "sla_latency",
                title: "Request latency per service and kind (SLA monitor, 1 m window)",
                unit: Unit::Seconds,
                kind: PanelKind::Timeseries,
                queries: &[
                    Query {
                        expr: "frontier_sla_sli{sli=\"latency_p50\",window=\"1m\"} / 1000",
                        legend: "p50 {{service}} {{kind}}",
                    },
                    Query {
                        expr: "frontier_sla_sli{sli=\"latency_p95\",window=\"1m\"} / 1000",
                        legend: "p95 {{service}} {{kind}}",
                    },
                    Query {
                        expr: "frontier_sla_sli{sli=\"latency_p99\",window=\"1m\"} / 1000",
                        legend: "p99 {{service}} {{kind}}",
                    },
                ],
            },
            Panel {
                id: "serve_latency",
                title: "Serving latency by kind",
                unit: Unit::Seconds,
                kind: PanelKind::Timeseries,
                queries: quantiles!("frontier_serve_latency_seconds", ", kind", "{{kind}}"),
            },
            Panel {
                id: "gateway_latency",
                title: "Gateway latency by route",
                unit: Unit::Seconds,
                kind: PanelKind::Timeseries,
                queries: quantiles!("frontier_gateway_request_duration_seconds", ", route", "{{route}}"),
            },
            Panel {
                id: "handle_latency",
                title: "Message handling time by worker",
                unit: Unit::Seconds,
                kind: PanelKind::Timeseries,
                queries: quantiles!("frontier_handle_duration_seconds", ", worker", "{{worker}}"),
            },
        ],
    },
    Section {
        title: "Cache",
        panels: &[
            Panel {
                id: "cache_hit_ratio",
                title: "Cache hit ratio per layer",
                unit: Unit::Ratio,
                kind: PanelKind::Timeseries,
                queries: &[
                    Query {
                        expr: "sum by (layer) (rate(frontier_cache_hits_total[1m])) / scalar(sum(rate(frontier_cache_hits_total[1m])) + sum(rate(frontier_cache_misses_total[1m])))",
                        legend: "{{layer}}",
                    },
                    Query {
                        expr: "sum(rate(frontier_cache_hits_total[1m])) / (sum(rate(frontier_cache_hits_total[1m])) + sum(rate(frontier_cache_misses_total[1m])))",
                        legend: "all layers",
                    },
                ],
            },
            Panel {
                id: "cache_lookups",
                title: "Cache lookups per second",
                unit: Unit::PerSecond,
                kind: PanelKind::Timeseries,
                queries: &[
                    Query { expr: "sum by (layer) (rate(frontier_cache_hits_total[1m]))", legend: "hit {{layer}}" },
                    Query { expr: "sum(rate(frontier_cache_misses_total[1m]))", legend: "miss" },
                ],
            },
        ],
    },
    Section {
        title: "Inference",
        panels: &[
            Panel {
                id: "inference_batch_size",
                title: "Mean batch size by model",
                unit: Unit::Count,
                kind: PanelKind::Timeseries,
                queries: &[Query {
                    expr: "sum by (model) (rate(frontier_inference_batch_size_sum[1m])) / sum by (model) (rate(frontier_inference_batch_size_count[1m]))",
                    legend: "{{model}}",
                }],
            },
            Panel {
                id: "inference_efficiency",
                title: "Batch efficiency (mean batch / largest allowed)",
                unit: Unit::Ratio,
                kind: PanelKind::Timeseries,
                queries: &[Query {
                    expr: "(sum by (model) (rate(frontier_inference_batch_size_sum[1m])) / sum by (model) (rate(frontier_inference_batch_size_count[1m]))) / max by (model) (frontier_inference_max_batch_size)",
                    legend: "{{model}}",
                }],
            },
            Panel {
                id: "inference_jobs",
                title: "Inference jobs per second by status",
                unit: Unit::PerSecond,
                kind: PanelKind::Timeseries,
                queries: &[Query {
                    expr: "sum by (status) (rate(frontier_inference_jobs_total[1m]))",
                    legend: "{{status}}",
                }],
            },
        ],
    },
    Section {
        title: "Database",
        panels: &[
            Panel {
                id: "db_statement_time",
                title: "Statement time (from the query events)",
                unit: Unit::Seconds,
                kind: PanelKind::Timeseries,
                queries: quantiles!("frontier_queries_statement_duration_seconds", "", "statements"),
            },
            Panel {
                id: "db_advice",
                title: "Findings and index advice (last 15 min)",
                unit: Unit::Count,
                kind: PanelKind::Stat,
                queries: &[
                    Query {
                        expr: "sum by (kind) (increase(frontier_queries_findings_total[15m]))",
                        legend: "{{kind}} statements",
                    },
                    Query {
                        expr: "sum by (action) (increase(frontier_queries_recommendations_total[15m]))",
                        legend: "advice: {{action}} index",
                    },
                    Query {
                        expr: "sum by (verdict) (increase(frontier_queries_payoff_verdicts_total[15m]))",
                        legend: "applied: {{verdict}}",
                    },
                ],
            },
        ],
    },
    Section {
        title: "Consumer groups",
        panels: &[
            Panel {
                id: "group_instances",
                title: "Instances per worker",
                unit: Unit::Instances,
                kind: PanelKind::Stat,
                queries: &[Query { expr: "sum by (worker) (frontier_worker_up)", legend: "{{worker}}" }],
            },
            Panel {
                id: "consumer_lag",
                title: "Consumer lag by group",
                unit: Unit::Messages,
                kind: PanelKind::Timeseries,
                queries: &[Query { expr: "sum by (group) (frontier_consumer_lag)", legend: "{{group}}" }],
            },
            Panel {
                id: "consumed",
                title: "Messages consumed per second by worker",
                unit: Unit::PerSecond,
                kind: PanelKind::Timeseries,
                queries: &[Query {
                    expr: "sum by (worker) (rate(frontier_messages_consumed_total[1m]))",
                    legend: "{{worker}}",
                }],
            },
        ],
    },
];

/// Every panel, in page order.
pub fn panels() -> impl Iterator<Item = &'static Panel> {
    SECTIONS.iter().flat_map(|section| section.panels.iter())
}

/// `legend` with every `{{label}}` replaced by the label's value (empty when absent), as
/// Grafana does; the result is trimmed, and a legend that names nothing stays as written.
pub fn series_name(legend: &str, label: impl Fn(&str) -> Option<String>) -> String {
    let mut name = String::with_capacity(legend.len());
    let mut rest = legend;
    while let Some(start) = rest.find("{{") {
        name.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            name.push_str(&rest[start..]);
            rest = "";
            break;
        };
        name.push_str(&label(after[..end].trim()).unwrap_or_default());
        rest = &after[end + 2..];
    }
    name.push_str(rest);
    let trimmed = name.split_whitespace().collect::<Vec<_>>().join(" ");
    if trimmed.is_empty() { legend.to_owned() } else { trimmed }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn panel_ids_are_unique() {
        let mut seen = HashSet::new();
        for panel in panels() {
            assert!(seen.insert(panel.id), "{} appears twice", panel.id);
        }
    }

    #[test]
    fn a_legend_takes_the_series_labels() {
        let labels = |name: &str| (name == "kind").then(|| "price_history".to_owned());
        assert_eq!(series_name("p99 {{kind}}", labels), "p99 price_history");
    }

    #[test]
    fn a_missing_label_leaves_no_double_space() {
        assert_eq!(series_name("p99 {{service}} {{kind}}", |_| None), "p99");
    }

    #[test]
    fn the_quantile_queries_read_the_histogram_buckets() {
        let serve = panels().find(|panel| panel.id == "serve_latency").map(|panel| panel.queries[2].expr);
        assert_eq!(
            serve,
            Some("histogram_quantile(0.99, sum by (le, kind) (rate(frontier_serve_latency_seconds_bucket[1m])))")
        );
    }
}
