//! The `/health/stats` document: a node's own figures, read by loadgen.
//!
//! loadgen reads a node's pid, CPU and memory from here when it cannot watch
//! the process itself (another host, a container). The node writes this type
//! and loadgen reads it, so the two cannot disagree on a field name; the JSON
//! is one flat object, e.g.
//! `{"node_id":"node1","pid":7,"uptime_secs":12.5,"connections":3,...,"bytes_per_connection":null}`.

use serde::{Deserialize, Serialize};

/// Answer of `GET /health/stats`. Counters count since the node started;
/// rates, CPU and RSS come from the node's once-a-second sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthStats {
    /// The node's id (`--node-id`, default `<hostname>-<port>`).
    pub node_id: String,
    /// The node's process id, in its own pid namespace (often 1 in a container).
    pub pid: u32,
    /// Seconds since the node started serving.
    pub uptime_secs: f64,
    /// WebSocket connections open now.
    pub connections: u64,
    /// WebSocket connections accepted since start.
    pub connections_total: u64,
    /// Client messages received.
    pub messages_in: u64,
    /// Messages sent to clients (chunks, acks, echoes, errors...).
    pub messages_out: u64,
    /// Client messages per second over the last sample.
    pub msgs_in_per_sec: f64,
    /// Messages to clients per second over the last sample.
    pub msgs_out_per_sec: f64,
    /// Answers being generated now.
    pub streams_active: u64,
    /// CPU use of the node's process, percent of one core (can exceed 100).
    pub cpu_pct: f32,
    /// Resident memory of the node's process, bytes.
    pub rss_bytes: u64,
    /// RSS at the first sample, before clients arrived (0 until then).
    pub rss_baseline_bytes: u64,
    /// (RSS - RSS at start) / open connections; `null` with no connection.
    pub bytes_per_connection: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_and_null_are_the_wire_format() {
        let s = HealthStats {
            node_id: "node1".into(),
            pid: 7,
            uptime_secs: 1.5,
            connections: 0,
            connections_total: 2,
            messages_in: 3,
            messages_out: 4,
            msgs_in_per_sec: 0.5,
            msgs_out_per_sec: 0.25,
            streams_active: 1,
            cpu_pct: 12.5,
            rss_bytes: 1024,
            rss_baseline_bytes: 512,
            bytes_per_connection: None,
        };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"{"node_id":"node1","pid":7,"uptime_secs":1.5,"connections":0,"connections_total":2,"messages_in":3,"messages_out":4,"msgs_in_per_sec":0.5,"msgs_out_per_sec":0.25,"streams_active":1,"cpu_pct":12.5,"rss_bytes":1024,"rss_baseline_bytes":512,"bytes_per_connection":null}"#
        );
        assert_eq!(serde_json::from_str::<HealthStats>(&json).unwrap(), s);
    }
}
