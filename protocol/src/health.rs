//! The `/health/stats` document: a node's own figures, read by loadgen.
//!
//! loadgen reads a node's pid, CPU and memory from here when it cannot watch
//! the process itself (another host, a container). The node writes this type
//! and loadgen reads it, so the two cannot disagree on a field name; the JSON
//! is one flat object, e.g.
//! `{"node_id":"node1","pid":7,"uptime_secs":12.5,"connections":3,...,"bytes_per_connection":null}`.
//!
//! [`NodeRegistration`] is the entry each node of a Redis cluster keeps in the
//! [`NODES_KEY`] hash, so loadgen can find and monitor every node of the
//! cluster, not only the one a load balancer shows it.

use serde::{Deserialize, Serialize};

/// The Redis hash of registered nodes: node id -> [`NodeRegistration`] JSON.
/// A node writes its entry with every heartbeat and deletes it when it stops;
/// a crashed node's entry stays until a cleanup pass sees its liveness key
/// ([`node_alive_key`]) gone.
pub const NODES_KEY: &str = "nodes:active";

/// The key a live node refreshes (with a TTL); it exists while the node lives.
pub fn node_alive_key(node_id: &str) -> String {
    format!("node:{node_id}:alive")
}

/// This machine's hostname as a node writes it in [`NodeRegistration::host`]
/// (letters, digits and `-` only), if it has one: a reader on the same
/// machine compares its own with it.
pub fn local_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| {
            h.trim()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect::<String>()
        })
        .filter(|h| !h.is_empty())
}

/// One node's entry in [`NODES_KEY`]. Fields may be added; readers ignore
/// the ones they do not know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRegistration {
    /// The node's id (`--node-id`).
    pub node_id: String,
    /// Where clients reach it (`--advertise-url`, default
    /// `ws://<listen address>/ws/chat`); its `/health/stats` is on the same
    /// host and port. `null` when the node does not know it.
    #[serde(default)]
    pub url: Option<String>,
    /// The node's process id, in its own pid namespace.
    pub pid: u32,
    /// The node's hostname, to tell whether `pid` is on the reader's machine.
    #[serde(default)]
    pub host: String,
    /// Wall-clock milliseconds of the entry's last refresh.
    #[serde(default)]
    pub last_seen_ms: u64,
}

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
    /// File descriptors the node's process holds now (`null` where the
    /// system does not say; absent from older nodes).
    #[serde(default)]
    pub open_fds: Option<u64>,
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
            open_fds: Some(9),
        };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"{"node_id":"node1","pid":7,"uptime_secs":1.5,"connections":0,"connections_total":2,"messages_in":3,"messages_out":4,"msgs_in_per_sec":0.5,"msgs_out_per_sec":0.25,"streams_active":1,"cpu_pct":12.5,"rss_bytes":1024,"rss_baseline_bytes":512,"bytes_per_connection":null,"open_fds":9}"#
        );
        assert_eq!(serde_json::from_str::<HealthStats>(&json).unwrap(), s);
        // An older node's document, without open_fds, still reads.
        let old = json.replace(r#","open_fds":9"#, "");
        let read: HealthStats = serde_json::from_str(&old).unwrap();
        assert_eq!(read.open_fds, None);
    }

    #[test]
    fn registrations_read_old_and_extended_entries() {
        let r = NodeRegistration {
            node_id: "node2".into(),
            url: Some("ws://127.0.0.1:8082/ws/chat".into()),
            pid: 42,
            host: "box".into(),
            last_seen_ms: 1,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"node_id":"node2","url":"ws://127.0.0.1:8082/ws/chat","pid":42,"host":"box","last_seen_ms":1}"#
        );
        assert_eq!(serde_json::from_str::<NodeRegistration>(&json).unwrap(), r);
        // A later node may add fields; an earlier one may lack the optional ones.
        let minimal: NodeRegistration =
            serde_json::from_str(r#"{"node_id":"n","pid":1,"zone":"a"}"#).unwrap();
        assert_eq!((minimal.url, minimal.host.as_str()), (None, ""));
        assert_eq!(node_alive_key("n1"), "node:n1:alive");
    }
}
