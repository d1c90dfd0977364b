//! The dashboards query only metrics a node really exports, and Prometheus
//! scrapes the nodes the deploy files define.

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;

fn repo_file(path: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every `wsnode_*` name in a PromQL expression.
fn metric_names(expr: &str, into: &mut BTreeSet<String>) {
    let mut rest = expr;
    while let Some(i) = rest.find("wsnode_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        into.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
}

#[tokio::test]
async fn every_dashboard_query_names_an_exported_metric() {
    let dash: serde_json::Value =
        serde_json::from_str(&repo_file("dashboards/grafana/wsbench-nodes.json")).unwrap();
    let mut wanted = BTreeSet::new();
    let panels = dash["panels"].as_array().expect("panels");
    assert!(panels.len() >= 8);
    for p in panels {
        for t in p["targets"].as_array().expect("targets") {
            metric_names(t["expr"].as_str().expect("expr"), &mut wanted);
        }
    }
    assert!(wanted.len() >= 10, "{wanted:?}");

    let node = support::start(&[]).await;
    let (status, text) = node.get("/metrics").await;
    assert_eq!(status, 200);
    let exported: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect();
    let missing: Vec<_> = wanted.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "dashboard queries metrics the node does not export: {missing:?}"
    );
    node.stop().await;
}

#[test]
fn prometheus_scrapes_the_compose_nodes_on_their_ports() {
    let prom = repo_file("dashboards/prometheus.yml");
    let compose = repo_file("docker-compose.multi-node.yml");
    for (service, port) in [("node1", 8081), ("node2", 8082), ("node3", 8083)] {
        assert!(
            prom.contains(&format!("\"{service}:{port}\"")),
            "{service}:{port} not scraped"
        );
        assert!(
            compose.contains(&format!("{service}:")),
            "{service} not in compose"
        );
        assert!(
            compose.contains(&format!("\"0.0.0.0:{port}\"")),
            "{service} does not listen on {port}"
        );
    }
    assert!(prom.contains("metrics_path: /metrics"));
}
