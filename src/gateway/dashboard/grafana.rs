//! The same panels as a Grafana dashboard (`frontier dashboard grafana`, checked in as
//! `ops/grafana/dashboards/frontier.json` and provisioned by compose). Rendered from
//! [`SECTIONS`], so the two dashboards cannot drift: a test compares the checked-in file.

use serde_json::{Value, json};

use super::panels::{PanelKind, SECTIONS, Unit};

/// The dashboard's uid (stable, so links to it survive re-imports).
pub const UID: &str = "frontier-optimization";

/// The provisioned Prometheus data source's uid (`ops/grafana/provisioning/datasources`).
pub const DATASOURCE_UID: &str = "frontier-prometheus";

/// Grafana's unit id for `unit`.
fn grafana_unit(unit: Unit) -> &'static str {
    match unit {
        Unit::Seconds => "s",
        Unit::Ratio => "percentunit",
        Unit::Count => "short",
        Unit::PerSecond => "reqps",
        Unit::Messages => "short",
        Unit::Instances => "none",
    }
}

/// The dashboard JSON (Grafana 11 schema), pretty-printed with a final newline.
pub fn dashboard_json() -> String {
    let datasource = json!({ "type": "prometheus", "uid": DATASOURCE_UID });
    let mut panels = Vec::new();
    let mut id = 1;
    let mut y = 0;
    // Firing alerts first, as on the gateway's page. The page asks Alertmanager; Grafana reads
    // Prometheus: its rules' alerts (ALERTS) and the SLA monitor's count of its own.
    panels.push(json!({
        "id": id, "type": "table", "title": "Firing alerts (Prometheus rules)", "datasource": datasource,
        "gridPos": { "x": 0, "y": y, "w": 18, "h": 5 },
        "targets": [{ "refId": "A", "datasource": datasource, "expr": "ALERTS{alertstate=\"firing\"}",
                      "format": "table", "instant": true, "range": false }],
    }));
    id += 1;
    panels.push(json!({
        "id": id, "type": "stat", "title": "SLA monitor alerts firing", "datasource": datasource,
        "gridPos": { "x": 18, "y": y, "w": 6, "h": 5 },
        "targets": [{ "refId": "A", "datasource": datasource, "expr": "sum(frontier_sla_alerts_firing)",
                      "instant": true, "range": false }],
    }));
    id += 1;
    y += 5;
    for section in SECTIONS {
        panels.push(json!({
            "id": id, "type": "row", "title": section.title, "collapsed": false,
            "gridPos": { "x": 0, "y": y, "w": 24, "h": 1 }, "panels": [],
        }));
        id += 1;
        y += 1;
        for (index, panel) in section.panels.iter().enumerate() {
            let targets: Vec<Value> = panel
                .queries
                .iter()
                .enumerate()
                .map(|(n, query)| {
                    json!({
                        "refId": char::from(b'A' + u8::try_from(n).unwrap_or(25).min(25)).to_string(),
                        "datasource": datasource,
                        "expr": query.expr,
                        "legendFormat": query.legend,
                        "instant": panel.kind == PanelKind::Stat,
                        "range": panel.kind == PanelKind::Timeseries,
                    })
                })
                .collect();
            let kind = match panel.kind {
                PanelKind::Timeseries => "timeseries",
                PanelKind::Stat => "stat",
            };
            let x = (index % 2) * 12;
            if index > 0 && index % 2 == 0 {
                y += 8;
            }
            panels.push(json!({
                "id": id, "type": kind, "title": panel.title, "datasource": datasource,
                "gridPos": { "x": x, "y": y, "w": 12, "h": 8 },
                "fieldConfig": { "defaults": { "unit": grafana_unit(panel.unit) }, "overrides": [] },
                "targets": targets,
            }));
            id += 1;
        }
        y += 8;
    }
    let dashboard = json!({
        "uid": UID,
        "title": "Frontier: optimization performance",
        "tags": ["frontier"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": true,
        "refresh": "5s",
        "time": { "from": "now-30m", "to": "now" },
        "panels": panels,
    });
    // Serializing a Value cannot fail (its keys are strings).
    let mut text = serde_json::to_string_pretty(&dashboard).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checked_in_grafana_dashboard_matches_the_panels() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ops/grafana/dashboards/frontier.json");
        let checked_in = std::fs::read_to_string(&path).unwrap();
        assert!(
            checked_in == dashboard_json(),
            "{} is out of date: run `cargo run -- dashboard grafana > {}`",
            path.display(),
            path.display()
        );
    }

    #[test]
    fn every_panel_query_reaches_grafana() {
        let dashboard: Value = serde_json::from_str(&dashboard_json()).unwrap();
        let exprs: Vec<&str> = dashboard["panels"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|panel| panel["targets"].as_array().into_iter().flatten())
            .filter_map(|target| target["expr"].as_str())
            .collect();
        // The panels' queries and the two alert panels'.
        let wanted = super::super::panels::panels().map(|panel| panel.queries.len()).sum::<usize>() + 2;
        assert_eq!(exprs.len(), wanted);
    }
}
