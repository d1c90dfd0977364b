//! Live metrics: `--metrics-listen ADDR` serves the run's figures in
//! Prometheus text format while it goes, so a run can sit beside the nodes'
//! own metrics in Grafana (`dashboards/grafana/wsbench-loadgen.json`).
//!
//! The figures come from the per-second [`Second`](crate::engine::collect::Second)s
//! every backend already produces: [`sink::LiveSink`] is one more
//! `SecondSink`, so the local engine and `--workers` feed it alike.
//! `figures` adds the seconds up (cumulative counters, fixed histogram
//! buckets, the last second's quantiles), `expo` writes them out, and
//! `http` answers `GET /metrics` with the text rendered at the last second:
//! a scrape never waits for the collector, nor the collector for a scrape.

pub mod expo;
pub mod figures;
pub mod http;
pub mod sink;
