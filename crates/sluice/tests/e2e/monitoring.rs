//! The Grafana dashboard and the PrometheusRule in `deploy/monitoring/` name only
//! metrics sluice exports: each `sluice_*` name in their expressions is a family of
//! a running sluice's `/metrics` (with `_total`, `_bucket`, `_sum`, `_count` as
//! OpenMetrics spells the samples).

use sluice_testkit::{app_config, Origin, Sluice};
use std::collections::BTreeSet;

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");
const DASHBOARD: &str = include_str!("../../../../deploy/monitoring/sluice-dashboard.json");
const RULES: &str = include_str!("../../../../deploy/monitoring/sluice-rules.yaml");

/// Every `sluice_...` identifier in `text`.
fn names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("sluice_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

fn family(name: &str) -> &str {
    ["_total", "_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name)
}

#[tokio::test]
async fn dashboard_and_alerts_name_only_exported_metrics() {
    let origin = Origin::start().await;
    let sluice = Sluice::start(SLUICE, &app_config(&[origin.server_spec()], "")).await;
    let exported: BTreeSet<String> = sluice
        .metrics()
        .await
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    let exprs: Vec<String> = {
        let dash: sluice_testkit::serde_json::Value =
            sluice_testkit::serde_json::from_str(DASHBOARD).unwrap();
        let panels = dash["panels"].as_array().unwrap();
        assert!(panels.len() >= 10, "a dashboard of {} panels", panels.len());
        panels
            .iter()
            .flat_map(|p| p["targets"].as_array().unwrap().clone())
            .map(|t| t["expr"].as_str().unwrap().to_string())
            .collect()
    };
    let rules: Vec<&str> = RULES
        .lines()
        .filter(|l| l.trim_start().starts_with("expr:") || l.starts_with("            "))
        .collect();
    assert!(rules.len() >= 8, "{rules:?}");
    let mut missing = Vec::new();
    for text in exprs
        .iter()
        .map(String::as_str)
        .chain(rules.iter().copied())
    {
        for name in names(text) {
            if !exported.contains(family(&name)) {
                missing.push(name);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not exported: {missing:?}\nexported: {exported:?}"
    );
}
